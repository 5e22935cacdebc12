from __future__ import annotations

from kinema.core.aspect import ASPECT_RATIOS, closest_ratio


def test_aspect_tables():
    assert ASPECT_RATIOS["240p"][1]["0.56"] == (240, 426)
    assert ASPECT_RATIOS["1080p"][1]["1.00"] == (1440, 1440)
    assert ASPECT_RATIOS["1024"][1]["2.0"] == (1408, 704) and ASPECT_RATIOS["512"][1]["0.25"] == (256, 1024)
    assert len(ASPECT_RATIOS["256"][1]) == 40
    for name, (budget, table) in ASPECT_RATIOS.items():  # every cell is near its budget and its ratio
        for key, (h, w) in table.items():
            assert abs(h * w / budget - 1) < 0.1, (name, key)
            assert abs(h / w - float(key)) < 0.06, (name, key)
    assert closest_ratio(1080, 1920, ASPECT_RATIOS["720p"][1]) == "0.56"
