"""--mixed_precision=auto: bfloat16 exactly where the hardware computes it natively."""

import pytest

from tfsynth import distribute

pytestmark = pytest.mark.unit

CPUINFO = "processor\t: {index}\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n\n"


def cpuinfo(tmp_path, extra: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text("".join(CPUINFO.format(index=i, extra=extra) for i in range(2)))
    return str(path)


@pytest.mark.parametrize("extra, expected", [
    ("avx512_bf16 avx512_vnni", ("bfloat16", "auto: bfloat16 is native here (avx512_bf16)")),
    ("amx_tile amx_bf16 avx512_bf16", ("bfloat16", "auto: bfloat16 is native here (amx_bf16)")),
    ("avx512_vnni", ("none", "auto: no native bfloat16 here, so float32")),
])
def test_auto_is_bfloat16_only_with_native_instructions(tmp_path, extra, expected):
    assert distribute.resolve_precision("auto", cpuinfo(tmp_path, extra)) == expected


def test_an_explicit_precision_is_kept_and_an_unreadable_cpuinfo_means_float32(tmp_path):
    assert distribute.resolve_precision("bfloat16", str(tmp_path / "missing")) == ("bfloat16", "--mixed_precision")
    assert distribute.resolve_precision("auto", str(tmp_path / "missing"))[0] == "none"
