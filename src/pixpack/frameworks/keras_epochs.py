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

from ..errors import UsageError
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
                self._check_whole_later_epochs(saved, epoch)
                self.loader.load_state_dict(saved)  # from where it stood before fit()
            else:
                self.loader.set_epoch(epoch)

        def _check_whole_later_epochs(self, saved: dict[str, Any], epoch: int) -> None:
            """Keras learns an unknown epoch length from the first epoch of a ``fit``
            (the batches it got, plus the step that found the end) and stops every later
            epoch there: a mid-epoch resume followed by more epochs in the same ``fit``
            would silently skip the end of each of them."""
            params = getattr(self, "params", None) or {}
            if params.get("steps") is not None or params.get("epochs", 0) <= epoch + 1:
                return
            per_step = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
            rest = self.loader._plan.batches(int(saved.get("position", 0)))
            learned = -(-(rest + 1) // per_step) * per_step
            if learned >= len(self.loader):
                return
            self._saved = saved  # the corrected fit() below starts from it again
            raise UsageError(
                f"pixpack.tf.epoch_callback: the state resumes epoch {epoch} with {rest} of "
                f"{len(self.loader)} batches left, and Keras would stop every later epoch of "
                f"this fit() after {learned} batches (it learns an epoch's length from "
                f"the first); finish the epoch alone, then go on: fit(ds, "
                f"initial_epoch={epoch}, epochs={epoch + 1}, callbacks=[cb]), then fit(ds, "
                f"initial_epoch={epoch + 1}, epochs={params['epochs']}, callbacks=[cb])."
            )

        def on_train_end(self, logs: Any = None) -> None:
            self._saved = self.loader.state_dict()  # for the next fit()

    return LoaderEpochs()
