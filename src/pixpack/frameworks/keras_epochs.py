"""A Keras callback that makes Keras epoch ``e`` read the Loader's epoch ``e``.

Each iteration of a :func:`pixpack.tf.dataset` runs the Loader's next epoch, and
``model.fit`` iterates once per epoch, so without a strategy the two counts agree.
Two things break that: under a ``tf.distribute`` strategy Keras (3.x, TF backend)
pulls one batch from a fresh iteration before training to build the model
(``_maybe_symbolic_build``), which starts - and abandons - a Loader epoch; and
``fit(initial_epoch=e)`` after a restart should continue epoch ``e``, not the
Loader's epoch 0. This callback sets the Loader's epoch at every ``on_epoch_begin``
and, for the first epoch of a ``fit`` that is the saved state's epoch, restores the
state taken before ``fit`` started (a mid-epoch resume survives the build's batch).
"""

from __future__ import annotations

from typing import Any

from ..optional import require

__all__ = ["loader_epochs"]


def loader_epochs(loader: Any) -> Any:
    """A ``keras.callbacks.Callback`` keeping ``loader``'s epoch equal to Keras's.

    Build it after ``loader.load_state_dict(...)`` (it keeps that state for the first
    epoch of the next ``fit``), pass it to every ``fit`` of that dataset."""
    keras = require("keras", "pixpack.tf.epoch_callback")

    class LoaderEpochs(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.loader = loader
            self._saved: dict[str, Any] | None = loader.state_dict()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            saved, self._saved = self._saved, None
            if saved is not None and saved.get("epoch") == epoch:
                self.loader.load_state_dict(saved)  # from where it stood before fit()
            else:
                self.loader.set_epoch(epoch)

        def on_train_end(self, logs: Any = None) -> None:
            self._saved = self.loader.state_dict()  # for the next fit()

    return LoaderEpochs()
