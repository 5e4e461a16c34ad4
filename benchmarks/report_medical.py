"""Markdown report of ``medical.py`` (tables from the JSON document it writes)."""

from __future__ import annotations

from typing import Any

WHAT = {
    "pixpack-raw": 'pack `mode="raw"`: int16 HU; Loader, 2 threads',
    "pixpack-lossless": 'pack `mode="lossless"`; Loader, 2 threads',
    "monai-persistent": "`PersistentDataset`, cached: load + HU + window (float32)",
    "monai-persistent-int16": "`PersistentDataset`, cached: load + HU as int16; window after crop",
    "monai-cache": "`CacheDataset` (RAM), cached: load + HU + window (float32)",
}


NOTES = """## How each system is configured, and what the numbers mean

- **pixpack**: `pixpack.pack(dicom_dir, out, mode="raw")` (all cores; int16 HU, exactly
  pydicom's `apply_modality_lut`), then `pixpack.Loader(pack, 32, workers=2, seed=0,
  dtype="float32", pipeline=[RandomResizedCrop(256, scale=(0.5, 1.0)),
  RandomHorizontalFlip(), WindowLevel(40, 400)])`: the crop and its antialiased resize
  run on the int16 values, the window last.
- **MONAI 1.6.1** (`pip install --no-deps monai`; pydicom 3.0.2, no ITK):
  `LoadImaged("image", reader=PydicomReader(swap_ij=False), image_only=True)` (it applies
  RescaleSlope/Intercept: float32 HU, equal to pydicom's values), `EnsureChannelFirstd`,
  `ScaleIntensityRanged(a_min=-160, a_max=240, b_min=0, b_max=1, clip=True)` (= window
  40/400, bit-identical to `WindowLevel`), cached; then, every epoch,
  `RandScaleCropd(roi_scale=sqrt(0.5), max_roi_scale=1.0, random_size=True)`,
  `Resized(spatial_size=(256, 256), mode="bilinear", anti_aliasing=False)`,
  `RandFlipd(prob=0.5, spatial_axis=1)`. `monai.data.DataLoader(batch_size=32,
  shuffle=True, num_workers=2, persistent_workers=True)`, `torch.set_num_threads(1)`.
  `PersistentDataset(cache_dir=...)` on the same disk (defaults: pickle protocol 2,
  `track_meta=False`); `CacheDataset(num_workers=2, progress=False)` (defaults:
  `copy_cache=True`, so every item is deep-copied before the random transforms).
  `-int16`: `CastToTyped(int16)` after loading (cached HU as int16) and the window after
  the flip, as pixpack does: half the cache, the same loader rate.
- **Differences in the random crop**: MONAI draws each side uniformly in
  [0.707, 1] x 512 (area 0.5-1, aspect 0.71-1.41, not uniform in area); torchvision's /
  pixpack's RandomResizedCrop draws the area uniformly in [0.5, 1] of the image and the
  aspect log-uniformly in [3/4, 4/3]. MONAI's resize here is **not antialiased**, so it
  does less work than pixpack's (torchvision's antialiased bilinear):
  `anti_aliasing=True` (MONAI's Gaussian pre-filter) costs 33 ms per 512x512 slice on
  one core against 1.4 ms without, and would have made MONAI ~10x slower. The first
  batches' means differ because the crops and the shuffles differ (every mean is over
  8 images).
- **Sizes**: the pack and the DICOM files are the same size (int16 = 2 bytes per
  pixel; pixpack's index and header are a few kB). `PersistentDataset` stores each slice
  with `torch.save`: 1,050,808 bytes a file for the float32 windowed tensor (1 MiB of
  pixels + 2.2 kB of pickle), 526,520 as int16: the usual recipe (window, then cache)
  doubles the data. `CacheDataset`'s tensors are 2.10 GB, but the process holds 5.9 GB
  (6.2 GB anonymous PSS over the tree): the cache build frees float64/float32
  intermediates (pydicom's `apply_modality_lut` output) that glibc keeps; with 300
  slices RSS grows 2.83 MB per slice, and 1.11 MB after `malloc_trim(0)`.
- **Peak PSS** includes the pages of the memory-mapped pack (file-backed, evictable);
  the anonymous part is in brackets. pixpack's 1.66 GB peak is the packing process
  (the pack file's pages in the page cache, counted while mapped), 392 MB anonymous.
- **Noise**: another session's process used up to ~0.7 of a core outside the
  benchmark lock during the run (seen in round 2), so the MONAI rows vary by up to 1.9x between rounds;
  pixpack's steady rate varied 2,772-3,656. Ratios are taken within a round, then the
  median; every round's value is in the JSON.
"""


def _f(v: Any, fmt: str = "{:,.0f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _mb(v: Any) -> str:
    return _f(v / 1e6 if v is not None else None, "{:,.0f} MB")


def _range(values: list[Any], fmt: str = "{:,.0f}") -> str:
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    return f" ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def render(doc: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["versions"]
    res = doc["results"]
    n_rounds = len(doc["rounds"])
    lines = [
        f"# 16-bit CT-like slices: pixpack vs MONAI cached datasets ({n_rounds} rounds)",
        "",
        f"- Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['ram_gb']} GiB RAM, "
        f"disk {m['disk'].get('device')} ({m['disk'].get('fstype')}), {m['os']}, Python "
        f"{m['python']}; load average at start {m['load_avg_at_start']}.",
        "- Versions: "
        + ", ".join(f"{k} {val}" for k, val in sorted(v.items()))
        + f"; git {doc['git']}.",
        f"- Command: `{doc['command']}` (as root, for the cold epochs).",
        f"- Data: {doc['samples']:,} CT-like DICOM slices, 512x512, 12 bits stored, "
        f"HU = stored - 1024 ({doc['dicom_bytes'] / 1e6:,.0f} MB of uncompressed DICOM), made "
        "from the bundled photographs by `benchmarks/medical_data.py` (luminance crops "
        "resized to 512, scaled to 0..4095 in float, 5 HU Gaussian noise, 0 outside the "
        "circular field of view).",
        "- Work, every system: random resized crop to 256x256 (area 0.5-1), random "
        "horizontal flip, window 40/400 (`clip((HU + 160) / 400, 0, 1)`), float32 batches "
        "of 32 x 1 x 256 x 256, 2 workers (pixpack: threads; MONAI: `DataLoader` "
        "processes, `persistent_workers=True`).",
        f"- Per run: the build (pack / MONAI's caching) from DICOM files in the page "
        f"cache, epoch 0, then {doc['epochs'] - 1} steady epochs (pack or cache in the page "
        "cache); each system in its own process, rounds interleaved; medians over rounds "
        "(range in brackets). Cold: one epoch in a fresh process after "
        "`echo 3 > /proc/sys/vm/drop_caches`.",
        "",
        "## Results",
        "",
        "| system | what | size | size / DICOM | build s | first epoch s (build + epoch 0) "
        "| steady img/s | cold epoch img/s | peak PSS of the process tree (anonymous) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    dicom = doc["dicom_bytes"]
    for name, what in WHAT.items():
        if name not in res:
            continue
        r = res[name]
        med = r["median"]
        if not med:
            lines.append(
                f"| {name} | {what} | not run: {r.get('error') or r['status']} | | | | | | |"
            )
            continue
        runs = [x for x in r["per_round"] if x]
        cold = res.get(name + "-cold", {}).get("median", {})
        if name == "monai-cache":
            size = med.get("cache_tensor_bytes")
            size_s = f"{_mb(size)} RAM (tensors)"
        else:
            size = med.get("disk_bytes")
            size_s = _mb(size)
        lines.append(
            f"| {name} | {what} | {size_s} | {_f(size / dicom if size else None, '{:.2f}')} "
            f"| {_f(med.get('build_s'), '{:.1f}')} "
            f"| {_f(med.get('first_epoch_s'), '{:.1f}')}"
            f"{_range([x['first_epoch_s'] for x in runs], '{:.1f}')} "
            f"| {_f(med.get('steady_rate'))}{_range([x['steady_rate'] for x in runs])} "
            f"| {_f(cold.get('epoch0_rate'))} "
            f"| {_mb(med.get('peak_pss'))} ({_mb(med.get('peak_pss_anon'))}) |"
        )
    lines += [
        "",
        "Cold epoch: pixpack and `PersistentDataset` read their existing pack or "
        "cache folder; `CacheDataset` has nothing on disk, so its cold figure is "
        "epoch 0 including caching again from cold DICOM files.",
        "",
    ]
    lines += [
        "## Ratios (median over rounds; per-round values in the JSON)",
        "",
        "| ratio | median | rounds |",
        "|---|---:|---|",
    ]
    for key, val in doc["ratios"].items():
        per = doc["ratios_per_round"][key]
        if val is None and all(p is None for p in per):
            lines.append(f"| {key} | pending | - |")
            continue
        lines.append(
            f"| {key} | {_f(val, '{:.2f}')} | " + ", ".join(_f(p, "{:.2f}") for p in per) + " |"
        )
    lines += [
        "",
        "## Output of each system (first batch)",
        "",
        "| system | dtype | shape | mean | std |",
        "|---|---|---|---:|---:|",
    ]
    for name in WHAT:
        runs = [x for x in res.get(name, {}).get("per_round", []) if x]
        if runs and runs[0].get("output"):
            o = runs[0]["output"]
            lines.append(f"| {name} | {o['dtype']} | {o['shape']} | {o['mean']} | {o['std']} |")
    lines += ["", NOTES]
    return "\n".join(lines)
