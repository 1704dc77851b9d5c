"""Platform detection reads files only."""

from coral_inference.platform import detect_platform


def _tree(tmp_path, files):
    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return tmp_path


def test_rk3588_board_is_detected_from_the_device_tree(tmp_path):
    root = _tree(
        tmp_path,
        {
            "proc/device-tree/compatible": b"radxa,rock-5b\x00rockchip,rk3588\x00",
            "proc/device-tree/model": b"Radxa ROCK 5B\x00",
            "dev/rknpu": b"",
        },
    )
    info = detect_platform(root=root, machine="aarch64")
    assert (info.kind, info.soc, info.model, info.detected_by) == (
        "rockchip",
        "rk3588",
        "Radxa ROCK 5B",
        "device tree",
    )
    assert "/dev/rknpu exists" in info.evidence


def test_jetson_is_detected_from_nv_tegra_release(tmp_path):
    root = _tree(tmp_path, {"etc/nv_tegra_release": "# R36 (release), REVISION: 3.0\n"})
    info = detect_platform(root=root, machine="aarch64")
    assert info.kind == "jetson" and info.detected_by == "nv_tegra_release"


def test_plain_machine_is_cpu_and_config_overrides(tmp_path):
    assert detect_platform(root=tmp_path, machine="x86_64").kind == "cpu"
    forced = detect_platform("rockchip", root=tmp_path, machine="x86_64")
    assert forced.kind == "rockchip" and forced.detected_by == "set in config (platform)"


def test_a_rockchip_soc_without_npu_is_not_an_npu_platform(tmp_path):
    root = _tree(tmp_path, {"proc/device-tree/compatible": b"rockchip,rk3328\x00"})
    assert detect_platform(root=root, machine="aarch64").kind == "cpu"
