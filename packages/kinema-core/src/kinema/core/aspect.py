"""Open-Sora 1.1's aspect-ratio tables: resolution name -> (pixel budget, {"h/w": (H, W)}).

Keys are height / width formatted "%.2f" (the PixArt-derived "256" / "512" / "1024" tables use
PixArt's shorter keys). ``closest_ratio`` picks the key nearest to a video's H / W.
"""

from __future__ import annotations

from .errors import KinemaError

_KEYS = ("0.38", "0.43", "0.48", "0.50", "0.53", "0.54", "0.56", "0.62", "0.67", "0.75", "1.00", "1.33", "1.50",
         "1.78", "1.89", "2.00", "2.08")
# name: (budget, [(H, W) per key in _KEYS order])
_VIDEO_TABLES = {
    "144p": (36864, [(117, 312), (125, 291), (133, 277), (135, 270), (139, 262), (141, 260), (144, 256), (151, 241),
                     (156, 234), (166, 221), (192, 192), (221, 165), (235, 156), (256, 144), (263, 139), (271, 135),
                     (277, 132)]),
    "240p": (102240, [(196, 522), (210, 490), (222, 462), (226, 452), (232, 438), (236, 436), (240, 426), (252, 404),
                      (262, 393), (276, 368), (320, 320), (370, 278), (392, 262), (426, 240), (440, 232), (452, 226),
                      (462, 222)]),
    "360p": (230400, [(294, 784), (314, 732), (332, 692), (340, 680), (350, 662), (352, 652), (360, 640), (380, 608),
                      (392, 588), (416, 554), (480, 480), (554, 416), (588, 392), (640, 360), (660, 350), (678, 340),
                      (692, 332)]),
    "480p": (409920, [(392, 1046), (420, 980), (444, 925), (452, 904), (466, 880), (470, 870), (480, 854), (506, 810),
                      (522, 784), (554, 738), (640, 640), (740, 555), (784, 522), (854, 480), (880, 466), (906, 454),
                      (924, 444)]),
    "720p": (921600, [(588, 1568), (628, 1466), (666, 1388), (678, 1356), (698, 1318), (706, 1306), (720, 1280),
                      (758, 1212), (784, 1176), (832, 1110), (960, 960), (1108, 832), (1176, 784), (1280, 720),
                      (1320, 698), (1358, 680), (1386, 666)]),
    "1080p": (2073600, [(882, 2352), (942, 2198), (998, 2080), (1018, 2036), (1048, 1980), (1058, 1958), (1080, 1920),
                        (1138, 1820), (1176, 1764), (1248, 1664), (1440, 1440), (1662, 1246), (1764, 1176),
                        (1920, 1080), (1980, 1048), (2036, 1018), (2078, 998)]),
}

# PixArt's 1024 table: keys below 1 with their sizes; keys above 1 are the transposes (0.52's is not used).
_PIXART_LOW = [
    ("0.25", 512, 2048), ("0.26", 512, 1984), ("0.27", 512, 1920), ("0.28", 512, 1856), ("0.32", 576, 1792),
    ("0.33", 576, 1728), ("0.35", 576, 1664), ("0.4", 640, 1600), ("0.42", 640, 1536), ("0.48", 704, 1472),
    ("0.5", 704, 1408), ("0.52", 704, 1344), ("0.57", 768, 1344), ("0.6", 768, 1280), ("0.68", 832, 1216),
    ("0.72", 832, 1152), ("0.78", 896, 1152), ("0.82", 896, 1088), ("0.88", 960, 1088), ("0.94", 960, 1024),
]
_PIXART_HIGH_KEYS = ("1.07", "1.13", "1.21", "1.29", "1.38", "1.46", "1.67", "1.75", "2.0", "2.09", "2.4", "2.5",
                     "2.89", "3.0", "3.11", "3.62", "3.75", "3.88", "4.0")


def _pixart_table(divisor: int) -> dict[str, tuple[int, int]]:
    table = {key: (h // divisor, w // divisor) for key, h, w in _PIXART_LOW}
    table["1.0"] = (1024 // divisor, 1024 // divisor)
    transposed = [(w, h) for key, h, w in reversed(_PIXART_LOW) if key != "0.52"]
    for key, (h, w) in zip(_PIXART_HIGH_KEYS, transposed):
        table[key] = (h // divisor, w // divisor)
    return table


ASPECT_RATIOS: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {
    name: (budget, dict(zip(_KEYS, sizes))) for name, (budget, sizes) in _VIDEO_TABLES.items()
}
ASPECT_RATIOS["256"] = (65536, _pixart_table(4))
ASPECT_RATIOS["512"] = (262144, _pixart_table(2))
ASPECT_RATIOS["1024"] = (1048576, _pixart_table(1))


def get_table(name: str) -> tuple[int, dict[str, tuple[int, int]]]:
    if name not in ASPECT_RATIOS:
        raise KinemaError(f"unknown resolution {name!r}; available: {', '.join(ASPECT_RATIOS)}")
    return ASPECT_RATIOS[name]


def closest_ratio(height: float, width: float, ratios: dict[str, tuple[int, int]]) -> str:
    """The key minimising |key - height / width| (first one on ties, in table order)."""
    ratio = height / width
    return min(ratios, key=lambda key: abs(float(key) - ratio))
