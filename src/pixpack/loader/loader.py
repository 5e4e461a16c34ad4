"""``Loader``: deterministic, resumable batches of augmented images from a pack.

Pieces (one module each): :mod:`.ordering` decides which samples form each batch,
:mod:`.batching` runs the pipeline per sample into :mod:`.buffers`, :mod:`.pool` owns
the threads, :mod:`.convert` fuses Normalize/dtype/layout, :mod:`.device` moves
uint8 to the GPU, :mod:`.state` keeps the epoch protocol and the resume state.
The core is framework-neutral (NumPy buffers, :mod:`.ring`); :mod:`.outputs` wraps
each batch as torch tensors or NumPy arrays, and only the torch output imports torch.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import LoaderError, PixpackError, UsageError
from ..opencv_threads import single_threaded_opencv
from ..options import LoaderOptions, default_workers
from .batch_spec import batch_spec, candidates
from .batching import SamplePlan, SampleReader, fill_chunk, split_pipeline
from .buffers import BatchBuffer
from .distributed import agree, resolve_shard, shard_facts
from .epoch_plan import EpochPlan
from .epoch_run import EpochRun
from .outputs import device_for, make_output
from .pool import WorkerPool
from .ring import BufferRing
from .sampling import check_indices
from .shard_sampler import ShardSampler
from .skips import SkipReport
from .state import EpochState
from .validate import check_foreign_ops

__all__ = ["Loader"]

Batch = tuple[Any, Any]  # (images, labels): torch tensors or NumPy arrays


class Loader:
    """Batches ``(images, labels)`` of a pack, augmented by ``pipeline``, as torch
    tensors (``output="torch"``, the default) or NumPy arrays (``output="numpy"``,
    which never imports torch; :mod:`pixpack.tf` and :mod:`pixpack.jax` build on it).

    ``images`` is ``(N, C, H, W)`` (``layout="channels_last"``: the same shape with
    NHWC memory, torch's ``channels_last`` format; ``"NHWC"``: ``(N, H, W, C)``) of
    ``dtype``; ``labels`` is int64.
    Float outputs are scaled to [0, 1] and then normalised by a trailing
    ``Normalize(mean, std)`` of the pipeline (fused, [0, 1] units); ``dtype="uint8"``
    gives the raw pixels (uint16 for 16-bit packs). 1-channel images (gray in an RGB
    pack) are replicated to ``channels`` (with an opaque alpha for 4); other channel
    changes are a UsageError.

    Batches are a pure function of ``(seed, epoch, rank, world_size, batch_size,
    shuffle, block_shuffle, block_window, drop_last)``: bit-identical whatever
    ``workers`` or ``read_ahead``. ``indices=`` reads only those samples (a split, in
    any order; shuffled unless ``shuffle=False``); ``sampler=`` draws each epoch's
    samples instead (:class:`~pixpack.WeightedSampler`,
    :class:`~pixpack.ClassBalancedSampler`), deterministically. Under ``torchrun`` the
    Loader shards by itself; ``state_dict()`` is the job's, resumable on any number of
    ranks (docs/distributed.md).

    A yielded batch is yours for as long as you reference it (the batch, a view, a
    tensor or array made from it): the loader rewrites a buffer only once nothing
    references it, so a loop that drops each batch reuses a few buffers without
    allocating, and a batch you keep never changes (:mod:`.ring`).
    ``reuse_buffers=False`` copies every batch into fresh memory anyway.

    ``on_error``: ``"raise"`` raises :class:`~pixpack.errors.LoaderError` (``.index``,
    cause chained) from the iteration; ``"skip"`` drops the failing sample so that
    batch is smaller (an all-failed batch is not yielded) and warns once per epoch;
    ``"warn"`` skips with a warning per sample; ``loader.skipped`` lists them. A
    pipeline output of the wrong size is always raised. Sharded over ranks
    (``world_size > 1``), an all-failed batch is yielded empty instead, so every rank
    still gets ``len(loader)`` batches and no collective waits forever.

    Larger than RAM: a background thread reads the next ``read_ahead`` batches' exact
    bytes (at most ``read_ahead_bytes``) while the current ones are decoded, with many
    requests in flight; ``block_shuffle=N`` trades some shuffle quality for large
    sequential reads (see docs/loader.md, "Larger than RAM"). A remote pack's shards are
    downloaded by that same read-ahead, ahead of the batches that need them;
    ``shard_window=K`` orders shards per epoch and mixes K at a time, so a cache
    smaller than the dataset downloads each shard once per epoch (docs/remote.md).
    """

    def __init__(
        self,
        pack: Any,
        batch_size: int = 64,
        *,
        pipeline: Sequence[Any] = (),
        shuffle: bool = True,
        seed: int | None = 0,
        drop_last: bool = False,
        workers: int | None = None,
        device: str = "cpu",
        prefetch: int = 2,
        on_error: str = "raise",
        rank: int | None = None,
        world_size: int | None = None,
        read_ahead: int = 8,
        read_ahead_bytes: int = 64 << 20,
        block_shuffle: int = 0,
        block_window: int = 8,
        shard_window: int = 0,
        exact: bool = False,
        indices: Any = None,
        sampler: Any = None,
        dtype: str | None = None,
        layout: str | None = None,
        channels: int | None = None,
        reuse_buffers: bool = True,
        output: str = "torch",
    ) -> None:
        # seed=None: a fresh seed, recorded in state_dict() (and adopted on a resume).
        self._seed_drawn = seed is None
        self._ranks_agreed = False  # checked across a process group at the first iter()
        seed = secrets.randbits(63) if seed is None else seed
        # Not given: the torch.distributed group's (or the launcher's) shard.
        shard_rank, shard_world = resolve_shard(rank, world_size)
        self.options = LoaderOptions(
            batch_size=batch_size,
            shuffle=bool(shuffle),
            seed=seed,
            drop_last=bool(drop_last),
            workers=default_workers() if workers is None else workers,
            prefetch=prefetch,
            device=str(device),
            on_error=on_error,  # type: ignore[arg-type]
            rank=shard_rank,
            world_size=shard_world,
            read_ahead=read_ahead,
            read_ahead_bytes=read_ahead_bytes,
            block_shuffle=block_shuffle,
            block_window=block_window,
            shard_window=shard_window,
            exact=bool(exact),
        )
        if indices is None and hasattr(pack, "indices") and hasattr(pack, "pack"):
            pack, indices = pack.pack, pack.indices  # a Subset (a query, a split)
        if isinstance(pack, (str, os.PathLike)):
            from ..read.open_any import open_pack

            pack = open_pack(pack)
        self.pack = pack
        self.num_samples = len(pack)
        if self.num_samples == 0:
            raise UsageError(
                f"{getattr(pack, 'path', 'the pack')}: the pack is empty; pack some images first."
            )
        self._targets = np.asarray(pack.index["label"])
        if indices is not None:
            indices = check_indices(indices, self.num_samples, getattr(pack, "path", "pack"))
        self.indices: np.ndarray | None = indices
        self._sampler = sampler
        self._shard_starts = getattr(pack, "shard_starts", None)
        self._plan = EpochPlan(self.options, self._targets, indices, sampler, self._shard_starts)
        ops, normalize, to_output = split_pipeline(pipeline)
        check_foreign_ops(ops)
        if dtype is None and to_output is not None:
            dtype = to_output.dtype
        elif dtype is None:
            dtype = "float32" if normalize else "uint8"
        if layout is None:
            layout = to_output.layout if to_output is not None else "NCHW"
        self.pipeline = SamplePlan(ops)
        self.reuse_buffers = bool(reuse_buffers)
        self._device = device_for(output, self.options.device)
        self._reader = SampleReader(pack, self.pipeline, seed)
        # The batch's shape and type from the samples read (a subset's, when given).
        shaped, probe = candidates(pack, self.indices, self._probe)
        self.spec = batch_spec(shaped, self.pipeline, normalize, dtype, layout, channels, probe)
        self.output = output
        self._output = make_output(output, self.spec)
        self._pool = WorkerPool(self.options.workers)
        # Never blocks: it may run from a garbage collection inside any thread.
        self._finalizer = weakref.finalize(self, self._pool.close, False)
        self._state = EpochState()
        self._ring: BufferRing | None = None
        self._active: weakref.ReferenceType[Any] | None = None
        self._next: EpochRun | None = None  # the next iter()'s first batches, started early
        self._stage: Any = None  # a device.DeviceStage with CUDA
        # Where the pixels cross to the device as uint8 and are converted there.
        self._host_spec = self.spec
        if self._device is not None and self.spec.pixel_dtype == np.uint8:
            self._host_spec = dataclasses.replace(self.spec, dtype="uint8", layout="channels_last")
        self._chunk = max(4, -(-self.options.batch_size // (2 * self.options.workers)))
        self._skips = SkipReport(self.options.on_error, getattr(pack, "path", "pack"))

    @property
    def skipped(self) -> list[tuple[int, str]]:
        """``(index, "ErrorType: message")`` of the samples ``on_error="skip"``/``"warn"``
        dropped in the current (or last) epoch."""
        return list(self._skips.samples)

    def _probe(self, index: int) -> np.ndarray:
        with single_threaded_opencv():
            return self._reader(index, 0)

    # -- sizes, state and the attributes training scripts use -----------------------------
    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return self._plan.batches()

    @property
    def batch_size(self) -> int:
        """Samples per batch on this rank."""
        return self.options.batch_size

    @property
    def dataset(self) -> Any:
        """The samples this loader draws from, as stored (no pipeline): a
        :class:`~pixpack.PackDataset` of CHW tensors over the pack, or over ``indices``."""
        from ..dataset import PackDataset

        return PackDataset(self.pack, output="tensor", indices=self.indices)

    @property
    def sampler(self) -> ShardSampler:
        """This rank's sample indices of the next epoch, like a ``DistributedSampler``:
        ``len()`` (samples per rank per epoch), iteration, ``set_epoch``."""
        return ShardSampler.of_loader(self)

    def _set_options(self, options: LoaderOptions) -> None:
        self.options = options
        self._plan = EpochPlan(
            options, self._targets, self.indices, self._sampler, self._shard_starts
        )

    def set_epoch(self, epoch: int) -> None:
        """Run ``epoch`` on the next ``iter()`` (otherwise each ``iter()`` advances by one)."""
        self._state.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` will run."""
        return self._state.next_epoch

    def _config(self) -> dict[str, Any]:
        o = self.options
        return {
            "seed": o.seed,
            "batch_size": o.batch_size,
            "num_samples": self.num_samples,
            "epoch_length": self._plan.length,
            "sampling": self._plan.describe(),
            "world_size": o.world_size,
            "rank": o.rank,
            "shuffle": o.shuffle,
            "drop_last": o.drop_last,
            "block_shuffle": o.block_shuffle if o.shuffle else 0,
            "block_window": o.block_window if o.shuffle and o.block_shuffle else 0,
            "shard_window": o.shard_window if o.shuffle else 0,
            "exact": o.exact,
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "position", "batches_yielded", "samples_yielded", "seed", ...}``:
        enough for a new Loader with the same seed and data to yield exactly the rest of
        the epoch. ``position`` is global (all ranks' samples), so the state of rank 0
        is the job's, and a job on any number of ranks resumes from it."""
        gen = self._active() if self._active is not None else None
        running = gen is not None and gen.gi_frame is not None  # not dropped, not closed
        plan = self._plan
        return self._state.snapshot(self._config(), plan.stride, plan.length, running)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next ``iter()`` continues ``state["epoch"]`` from its global
        ``position``, on this loader's ranks and batch size."""
        self._stop_active()
        before = self.options
        if self._seed_drawn and isinstance(state, dict) and "seed" in state:
            # Built with seed=None: continue the saved run's seed, not the drawn one.
            self._set_options(dataclasses.replace(before, seed=state["seed"]))
        try:
            self._state.restore(state, self._config(), self._plan.length)
        except BaseException:
            self._set_options(before)
            raise
        self._reader.seed = self.options.seed
        self._seed_drawn = self._seed_drawn and self.options is before

    def _agree_across_ranks(self) -> None:
        """Once, at the first iteration: the group's ranks must read with the same seed,
        pack and pipeline (one collective; see :mod:`.distributed`)."""
        seed = agree(self.options.world_size, shard_facts(self), drawn_seed=self._seed_drawn)
        if seed is not None:
            self._set_options(dataclasses.replace(self.options, seed=seed))
            self._reader.seed = seed
        self._ranks_agreed = True

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the running iteration, join the threads and free the buffers."""
        self._stop_active()
        # Closed first: an iteration in another thread that starts an early run after
        # this sees it and drops the run itself (Loader._schedule).
        self._finalizer.detach()
        self._drop_next()
        self._pool.close(wait=True)
        self._ring = None

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rest(self) -> None:
        """Between epochs: end the threads and free the batch buffers (the next ``iter()``
        makes them again), unless an iteration is running. For adapters whose Loader
        outlives its use: tf.data never frees a ``from_generator`` callable."""
        gen = self._active() if self._active is not None else None
        if gen is not None and gen.gi_frame is not None:
            return
        self._drop_next()
        self._ring = None
        self._pool.stop()

    def _stop_active(self) -> None:
        gen = self._active() if self._active is not None else None
        self._active = None
        if gen is not None:
            try:
                gen.close()
            except ValueError:  # closing from inside itself: it is finishing anyway
                pass

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        self._stop_active()
        if not self._finalizer.alive:
            raise LoaderError("the loader was closed; create a new Loader to iterate again")
        if not self._ranks_agreed:
            self._agree_across_ranks()
        epoch, start = self._state.begin()
        gen = self._iterate(epoch, start)
        self._active = weakref.ref(gen)
        return gen

    def _buffers(self) -> BufferRing:
        if self._ring is None:
            if self._device is not None and self._stage is None:
                from .device import DeviceStage

                self._stage = DeviceStage(self._device, self.spec, self._host_spec)
            # On CUDA the caller only sees device tensors: the host buffers are never
            # lent, and an event (not a reference count) says when one is free again.
            host_output = self._stage.host if self._stage is not None else self._output
            allocate = host_output.allocator(pin=self._stage is not None and self._stage.pin)
            cast = host_output.bfloat16_cast()
            spec, capacity = self._host_spec, self._batch_capacity()

            def make() -> BatchBuffer:
                return BatchBuffer(spec, capacity, allocate=allocate, cast=cast)

            lend = self._stage is None
            # Lent: one more than in flight, for the batch the caller is still using.
            keep = self.options.prefetch + (2 if lend else 1)
            self._ring = BufferRing(make, keep, lend=lend)
        return self._ring

    def _batch_capacity(self) -> int:
        """Samples a batch buffer must hold: never more than one rank's epoch (a
        batch_size far above the pack's size must not allocate for it)."""
        return min(self.options.batch_size, max(1, self._plan.rank_length()))

    def _iterate(self, epoch: int, start: int) -> Iterator[Batch]:
        o = self.options
        run = self._claim_run(epoch, start)
        ring = self._buffers()
        # Sharded, an all-failed batch is yielded empty: every rank the same batch count.
        keep_empty = o.world_size > 1
        report = self._skips
        report.begin(epoch)
        try:
            self._schedule(run)
            while run.pending:
                buf, futures = run.pending[0]
                self._pool.wait(futures)
                run.pending.popleft()
                report.record(buf.failures)
                if buf.ok[: buf.size].any() or not buf.size or keep_empty:
                    out = self._deliver(buf)
                    self._state.yielded += 1
                    self._state.samples += len(out[1])
                    yield out
                    # Drop this frame's reference: whether the buffer is free again is
                    # decided by the caller's references alone (ring.take).
                    del out
                else:  # every sample failed: the position counts, nothing is yielded
                    self._state.yielded += 1
                ring.give_back(buf)
                self._schedule(run)
            self._state.finished = True
            report.end()
        finally:
            run.close(self._pool)

    def _run_key(self, epoch: int, start: int) -> tuple[Any, ...]:
        """What decides an epoch's batches (:class:`.epoch_run.EpochRun`)."""
        return (epoch, start, self._plan, self.options, self._reader.seed)

    def _claim_run(self, epoch: int, start: int) -> EpochRun:
        """The run of this ``iter()``: the one started early if it is this epoch's."""
        key, early, self._next = self._run_key(epoch, start), self._next, None
        if early is not None and early.key == key:
            early.adopt()
            return early
        self._drop_run(early)
        return EpochRun(key, self._plan, self.pack, self.options)

    def _drop_run(self, run: EpochRun | None) -> None:
        if run is not None:
            run.close(self._pool, None if self._ring is None else self._ring.give_back)

    def _drop_next(self) -> None:
        """Cancel the next epoch's early batches, if any."""
        run, self._next = self._next, None
        self._drop_run(run)

    def _schedule(self, run: EpochRun) -> None:
        """Keep ``prefetch`` batches in flight: this epoch's, then (CPU output, once
        this epoch's last batch is scheduled) the first ones of the next ``iter()``'s."""
        prefetch = self.options.prefetch
        run.schedule(prefetch - len(run.pending), self._submit)
        if not run.all_scheduled or self._stage is not None:
            return  # the CUDA path keeps its order of events: no batch of a later epoch
        state = self._state
        key = self._run_key(state.next_epoch, state.resume_position)
        if self._next is not None and self._next.key != key:  # set_epoch() since it started
            self._drop_next()
        scheduled = False
        try:
            if self._next is None:
                self._next = EpochRun(key, self._plan, self.pack, self.options, early=True)
            if self._finalizer.alive:  # else close() ran in another thread meanwhile
                early = self._next
                early.schedule(prefetch - len(run.pending) - len(early.pending), self._submit)
                scheduled = True
        except Exception:
            pass  # the next epoch's problem (a truncated shard): its iter() meets it afresh
        finally:
            if not scheduled:  # also on KeyboardInterrupt, which goes on up
                self._drop_next()

    def _submit(self, epoch: int, indices: np.ndarray) -> tuple[BatchBuffer, list[Any]]:
        """Schedule one batch of ``indices`` into a free buffer."""
        buf = self._buffers().take()
        if self._stage is not None:  # its last copy to the device may still be reading it
            self._stage.wait_reusable(buf)
        n = len(indices)
        buf.size = n
        buf.failures = []
        raise_errors = self.options.on_error == "raise"
        path = getattr(self.pack, "path", "pack")
        if n and not self._intact(indices, buf, raise_errors, path):
            return buf, []
        buf.labels_np[:n] = self._targets[indices]
        reader, spec, chunk, pool = self._reader, self._host_spec, self._chunk, self._pool
        futures = [
            pool.submit(fill_chunk, reader, indices[a : a + chunk], epoch, buf, a,
                        min(a + chunk, n), spec, raise_errors, path)
            for a in range(0, n, chunk)
        ]  # fmt: skip
        return buf, futures

    def _intact(self, indices: np.ndarray, buf: BatchBuffer, raise_errors: bool, path: Any) -> bool:
        """Whether the pack file is still whole before a batch touches its index; if it
        was truncated, every sample of the batch fails (touching it would be SIGBUS)."""
        check = getattr(self.pack, "check_intact", None)
        try:
            if check is not None:
                check(int(indices[0]))
        except PixpackError as exc:
            if raise_errors:
                raise LoaderError(f"{exc}", int(indices[0])) from exc
            buf.ok[: len(indices)] = False
            buf.failures = [(int(i), exc) for i in indices.tolist()]
            return False
        return True

    def _deliver(self, buf: BatchBuffer) -> Batch:
        if self._stage is not None:
            return self._stage.transfer(buf, buf.size)
        return self._output.deliver(buf, fresh=not self.reuse_buffers)

    def __repr__(self) -> str:
        o = self.options
        return (
            f"<pixpack.Loader {self.num_samples} samples, batch_size={o.batch_size}, "
            f"{len(self)} batches/epoch, workers={o.workers}, device={o.device!r}, "
            f"output={self.output!r}>"
        )
