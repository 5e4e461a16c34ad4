"""The pixpack CLI, run as ``python -m pixpack`` in subprocesses: output and exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixpack import format as fmt
from pixpack import sample_data
from pixpack.cli import main as cli_main
from pixpack.options import PackOptions
from pixpack.read import open_pack

pytest.importorskip("pixpack.write.packer")  # `pixpack pack` needs the packer


def pixpack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixpack", *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: ") or "error:" in lines[-1]
    for needle in needles:
        assert needle in proc.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "src"
    return sample_data.make_image_folder(root, num_classes=3, per_class=4, size=(80, 60), seed=2)


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli_pack") / "data.pixpack"
    proc = pixpack("pack", folder, out, "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"packed 12 images into {out}")
    return out


def test_version():
    proc = pixpack("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("pixpack ") and "format 1." in proc.stdout


def test_pack_flags_reach_pack_options(folder, tmp_path):
    out = tmp_path / "small.pixpack"
    proc = pixpack("pack", folder, out, "--mode", "jpeg", "--quality", "80", "--max-side", "40",
                   "--channels", "1", "--workers", "1", "--strict", "--quiet",
                   "--reencode", "always")
    assert proc.returncode == 0, proc.stderr
    pack = open_pack(out)
    assert pack.metadata["options"] == {"mode": "jpeg", "quality": 80, "reencode": "always",
                                        "max_side": 40, "channels": 1}
    assert max(max(pack.sample_shape(i)[:2]) for i in range(len(pack))) == 40
    assert {pack.sample_shape(i)[2] for i in range(len(pack))} == {1}


def test_info_text_and_json(packed, folder):
    proc = pixpack("info", packed)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "samples:   12" in text and "storage:   raw 12" in text
    assert "class_01  4" in text and "mean/std:" in text and "skipped:   0" in text
    info = json.loads(pixpack("info", packed, "--json").stdout)
    assert info["samples"] == 12
    assert [c["count"] for c in info["classes"]] == [4, 4, 4]
    assert info["modes"] == {"raw": 12} and info["dtypes"] == {"uint8": 12}
    sizes = [Image.open(p).size for p in sorted(folder.rglob("*.jpg"))]
    heights = np.array([h for _, h in sizes])
    assert info["height"] == {"min": int(heights.min()), "median": int(np.median(heights)),
                              "max": int(heights.max())}
    assert info["bytes"]["file"] == packed.stat().st_size
    assert info["bytes"]["decoded"] == info["bytes"]["samples"]  # raw: stored = decoded
    assert len(info["mean"]) == 3 and all(0 < m < 1 for m in info["mean"])


def test_verify_ok_then_damaged(packed, tmp_path):
    proc = pixpack("verify", packed)
    assert proc.returncode == 0 and "ok" in proc.stdout
    broken = tmp_path / "broken.pixpack"
    blob = bytearray(packed.read_bytes())
    offset = open_pack(packed).sample_info(5)["offset"]
    blob[offset + 10] ^= 0xFF
    broken.write_bytes(bytes(blob))
    proc = pixpack("verify", broken)
    assert proc.returncode == 1
    assert "sample 5: checksum mismatch" in proc.stdout
    assert_one_line_error(proc, 1, "1 damaged sample(s): 5")


def test_info_on_a_flipped_label_bit(packed, tmp_path):
    """A label is an unverified index field: a flipped high bit must not make info try
    to allocate a counter per possible label (8 TiB: MemoryError traceback)."""
    damaged = tmp_path / "label.pixpack"
    blob = bytearray(packed.read_bytes())
    at = int(open_pack(packed).header["index_offset"]) + fmt.INDEX_DTYPE.fields["label"][1]
    blob[at + 5] ^= 0x01  # bit 40 of sample 0's label
    damaged.write_bytes(bytes(blob))
    proc = pixpack("info", damaged)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "1 with a label outside the class list" in proc.stdout
    info = json.loads(pixpack("info", damaged, "--json").stdout)
    assert info["labels_out_of_range"] == 1
    assert sum(c["count"] for c in info["classes"]) == 11


def test_export_then_repack(packed, tmp_path):
    out = tmp_path / "tree"
    proc = pixpack("export", packed, out)
    assert proc.returncode == 0 and "exported 12 images" in proc.stdout
    assert len(list(out.rglob("*.png"))) == 12
    again = tmp_path / "again.pixpack"
    assert pixpack("pack", out, again, "--workers", "1", "--quiet").returncode == 0
    a, b = open_pack(packed), open_pack(again)
    assert a.targets.tolist() == b.targets.tolist()
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i][0], b[i][0])


def test_expected_errors_are_one_line(tmp_path, packed, folder):
    assert_one_line_error(pixpack("info", tmp_path / "missing.pixpack"), 1, "missing.pixpack")
    jpeg = next(folder.rglob("*.jpg"))
    assert_one_line_error(pixpack("verify", jpeg), 1, "is not a pixpack file")
    cut = tmp_path / "cut.pixpack"
    cut.write_bytes(packed.read_bytes()[:5000])
    assert_one_line_error(pixpack("info", cut), 1, "truncated")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(pixpack("pack", empty, tmp_path / "x.pixpack"), 1)


def test_usage_errors_exit_2(folder, tmp_path):
    assert_one_line_error(pixpack("pack", folder, tmp_path / "x.pixpack", "--quality", "500"),
                          2, "quality must be")
    proc = pixpack("pack", folder)
    assert proc.returncode == 2 and "required" in proc.stderr
    assert pixpack("frobnicate").returncode == 2
    assert pixpack("pack", folder, tmp_path / "y", "--mode", "png").returncode == 2


def test_ctrl_c_exits_130(monkeypatch, capsys, packed):
    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["info"].set_defaults(run=interrupted)
    assert cli_main.main(["info", str(packed)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_every_pack_option_is_a_flag():
    parser = cli_main.build_parser()
    pack_parser = parser._subparsers._group_actions[0].choices["pack"]
    dests = {a.dest for a in pack_parser._actions}
    assert {f.name for f in dataclasses.fields(PackOptions)} <= dests
    args = pack_parser.parse_args(["src", "out", "--max-side", "64", "--strict"])
    from pixpack.cli._dataclass_args import dataclass_from_args

    options = dataclass_from_args(PackOptions, args)
    assert options == dataclasses.replace(PackOptions(), max_side=64, strict=True)


def test_a_command_group_registers_with_one_line(monkeypatch, capsys):
    def add_parsers(subparsers):
        p = subparsers.add_parser("hello")
        p.set_defaults(run=lambda args: print("hi") or 0)

    extra = types.SimpleNamespace(add_parsers=add_parsers)
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", (*cli_main.COMMAND_MODULES, extra))
    assert cli_main.main(["hello"]) == 0
    assert capsys.readouterr().out == "hi\n"
    assert isinstance(cli_main.build_parser(), argparse.ArgumentParser)


def test_errors_stay_one_line_whatever_the_file_name(tmp_path, capsys):
    """A file named "bad\\nerror: x.jpg" made --strict print what read as two errors."""
    root = tmp_path / "src"
    (root / "c").mkdir(parents=True)
    (root / "c" / "bad\nerror: x.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "c" / "good.png")
    code = cli_main.main(["pack", str(root), str(tmp_path / "o.pixpack"), "--strict", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: ") and "bad\\nerror: x.jpg" in err
    cli_main.main(["pack", str(root), str(tmp_path / "o.pixpack"), "--quiet"])
    warning = capsys.readouterr().err  # the summary warning names the skipped file
    assert "bad\\nerror: x.jpg" in warning
    assert [line.split(":")[0] for line in warning.splitlines()] == ["warning"]


# -- issue 13 item 5: every CLI error path is one line with a fix -------------------------
def test_a_misspelt_flag_gets_the_commands_usage_and_a_suggestion(folder, tmp_path):
    proc = pixpack("pack", folder, tmp_path / "x.pixpack", "--max_side", "128")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: pixpack pack ")
    assert proc.stderr.strip().splitlines()[-1] == (
        "pixpack pack: error: unrecognized arguments: --max_side 128; did you mean --max-side?"
    )
    proc = pixpack("info", folder, "--jsn")
    assert proc.returncode == 2 and "did you mean --json?" in proc.stderr


def test_a_missing_pack_names_the_fix(tmp_path):
    missing = tmp_path / "nonexist.pixpack"
    proc = pixpack("info", missing)
    assert_one_line_error(proc, 1)
    assert proc.stderr == (
        f"error: No such file or directory: {missing}; check the path "
        "(a pack is written by pixpack pack SRC OUT)\n"
    )


def test_a_closed_pipe_is_not_an_error(packed):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixpack", "info", str(packed), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # what `| head` does once it has its lines
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141 and err == b""


def test_export_into_a_folder_with_files_exits_1(packed, tmp_path):
    taken = tmp_path / "out" / "class_00"
    taken.mkdir(parents=True)
    (taken / "mine.txt").write_text("keep")
    proc = pixpack("export", packed, tmp_path / "out")
    assert_one_line_error(proc, 1, "already exists and is not empty; export into a new directory")
    assert (taken / "mine.txt").read_text() == "keep"


def test_help_speaks_flags_not_python():
    proc = pixpack("pack", "--help")
    assert proc.returncode == 0
    assert "None" not in proc.stdout and '="' not in proc.stdout and '"raw"' not in proc.stdout
    text = " ".join(proc.stdout.split())
    assert "for --mode jpeg" in text and "see --reencode" in text
