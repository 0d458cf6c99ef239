#!/usr/bin/env python3
"""Regenerates data/network/hunan.csv from the curated list below.

Not needed at build or run time: hunan.csv is the committed artefact. This script records how
it was made (positions, km, charger counts) so the file can be rebuilt and reviewed.

    pip install pypinyin          # only used to spell name_pinyin
    python3 data/network/build_hunan.py

Every position is APPROXIMATE (WGS84, typically within a few km): it was placed by hand on the
highway near the town the service area is named after. See README.md for the meaning of every
column and of the `source` labels.
"""

import csv
import math
import os
import random
import sys

try:
    from pypinyin import lazy_pinyin
except ImportError:  # pragma: no cover
    sys.exit("pip install pypinyin")

V = "verified"  # name and highway both stated by a public source (see README)
VN = "verified-name"  # name stated by a public source; highway assignment is ours
U = "unverified-name"  # name believed real, not confirmed by a source we could find
I = "interpolated-name"  # placeholder named after a town on the route; may not exist

# Highway -> (direction of travel in which km increases, the opposite direction,
#             entry point (lat, lon) where km = 0: border crossing or start of the route).
# Then the service areas in km order: (name_zh, lat, lon, source).
HIGHWAYS = {
    # G4 Beijing-Hong Kong-Macau, Hubei border (north) -> Guangdong border (south).
    "G4": ("S", "N", (29.69, 113.70), [
        ("羊楼司服务区", 29.585, 113.605, V),
        ("临湘服务区", 29.470, 113.520, V),
        ("桃林服务区", 29.370, 113.420, V),
        ("巴陵服务区", 29.270, 113.230, V),
        ("大荆停车区", 29.010, 113.240, V),
        ("平江服务区", 28.830, 113.240, V),
        ("安沙停车区", 28.420, 113.100, V),
        ("长沙服务区", 28.300, 113.080, V),
        ("昭山服务区", 27.960, 112.990, V),
        ("建宁停车区", 27.680, 113.040, V),
        ("朱亭服务区", 27.380, 113.080, V),
        ("衡山服务区", 27.180, 112.920, V),
        ("雁城服务区", 26.960, 112.720, V),
        ("冠市服务区", 26.720, 112.760, V),
        ("耒阳服务区", 26.450, 112.880, V),
        ("永兴服务区", 26.150, 113.060, V),
        ("苏仙服务区", 25.640, 112.960, V),
        ("宜章服务区", 25.420, 112.940, V),
    ]),
    # G0421 Xuchang-Guangzhou, Yueyang (north) -> Hengyang -> Guangdong border (south).
    "G0421": ("S", "N", (29.45, 113.28), [
        ("永安停车区", 29.210, 113.170, V),
        ("荣家湾服务区", 29.130, 113.090, V),
        ("屈子祠停车区", 28.850, 112.990, V),
        ("湘阴服务区", 28.680, 112.930, V),
        ("湘阴南停车区", 28.520, 112.900, V),
        ("雷锋服务区", 28.290, 112.790, VN),
        ("射埠服务区", 27.620, 112.770, I),
        ("高真寺服务区", 27.200, 112.650, V),
        ("斜坡堰服务区", 27.000, 112.530, V),
        ("雨母山服务区", 26.850, 112.520, V),
        ("常宁服务区", 26.420, 112.450, VN),
        ("临武服务区", 25.300, 112.560, I),
    ]),
    # G60 Shanghai-Kunming, Jiangxi border (east) -> Guizhou border (west).
    "G60": ("W", "E", (27.70, 113.68), [
        ("醴陵服务区", 27.680, 113.450, U),
        ("白关服务区", 27.820, 113.200, I),
        ("湘潭服务区", 27.870, 112.820, V),
        ("韶山服务区", 27.840, 112.560, V),
        ("水府庙服务区", 27.690, 112.200, V),
        ("邵东服务区", 27.300, 111.780, V),
        ("宝庆服务区", 27.190, 111.520, V),
        ("隆回服务区", 27.130, 111.100, V),
        ("洞口服务区", 27.060, 110.620, V),
        ("雪峰山服务区", 27.160, 110.380, U),
        ("中方服务区", 27.400, 109.950, I),
        ("芷江服务区", 27.450, 109.650, V),
        ("新晃服务区", 27.330, 109.200, VN),
    ]),
    # G72 Quanzhou-Nanning, Jiangxi border near Yanling (east) -> Guangxi border (west).
    "G72": ("W", "E", (26.52, 113.98), [
        ("炎陵服务区", 26.550, 113.700, U),
        ("茶陵服务区", 26.800, 113.530, V),
        ("衡东服务区", 27.050, 113.000, V),
        ("祁东服务区", 26.780, 112.100, I),
        ("祁阳服务区", 26.580, 111.850, U),
        ("永州服务区", 26.400, 111.550, I),
        ("东安服务区", 26.400, 111.300, U),
    ]),
    # G1517 Putian-Yanling: the short Hunan section from the Jiangxi border into Yanling.
    "G1517": ("W", "E", (26.47, 114.05), [
        ("睦村服务区", 26.500, 113.920, I),
    ]),
    # G5513 Changsha-Zhangjiajie, Changsha (east) -> Zhangjiajie (west).
    "G5513": ("W", "E", (28.22, 112.88), [
        ("宁乡服务区", 28.300, 112.580, U),
        ("益阳服务区", 28.580, 112.350, U),
        ("太子庙服务区", 28.800, 112.050, V),
        ("德山服务区", 29.000, 111.700, I),
        ("桃源服务区", 28.930, 111.450, U),
        ("慈利服务区", 29.400, 111.100, U),
        ("永定服务区", 29.200, 110.620, VN),
    ]),
    # G5517 Changsha-Changde north line, Changsha (east) -> Changde (west).
    "G5517": ("W", "E", (28.25, 112.88), [
        ("长沙西服务区", 28.300, 112.800, V),
        ("黄家湖服务区", 28.650, 112.450, V),
        ("汉寿服务区", 28.900, 111.970, V),
    ]),
    # G5515 Zhangjiajie-Nanchong, Zhangjiajie (south-east) -> Sangzhi (north-west).
    "G5515": ("N", "S", (29.13, 110.47), [
        ("茅岩河服务区", 29.250, 110.300, VN),
        ("桑植服务区", 29.400, 110.160, I),
    ]),
    # G56 Hangzhou-Ruili, Hubei/Jiangxi side (east) -> Yueyang -> Changde -> Jishou (west).
    "G56": ("W", "E", (29.50, 113.72), [
        ("忠防服务区", 29.420, 113.600, I),
        ("君山服务区", 29.420, 112.980, U),
        ("华容服务区", 29.500, 112.600, U),
        ("安乡服务区", 29.400, 112.180, U),
        ("马底驿服务区", 28.620, 110.750, U),
        ("沅陵服务区", 28.450, 110.400, U),
        ("泸溪服务区", 28.220, 110.200, I),
    ]),
    # G65 Baotou-Maoming, Chongqing border at Chadong (north) -> Guangxi border (south).
    "G65": ("S", "N", (28.43, 109.30), [
        ("花垣服务区", 28.550, 109.500, U),
        ("矮寨服务区", 28.330, 109.600, U),
        ("凤凰服务区", 27.970, 109.600, U),
        ("麻阳服务区", 27.860, 109.800, U),
        ("会同服务区", 26.880, 109.720, U),
        ("靖州服务区", 26.580, 109.700, U),
        ("通道服务区", 26.180, 109.780, U),
    ]),
    # G55 Erenhot-Guangzhou, Hubei border (north) -> Changde -> Anhua -> Shaoyang -> Yongzhou
    # -> Guangdong border (south).
    "G55": ("S", "N", (29.80, 111.80), [
        ("澧县服务区", 29.650, 111.750, U),
        ("临澧服务区", 29.430, 111.650, I),
        ("鼎城服务区", 29.000, 111.600, I),
        ("安化服务区", 28.370, 111.250, U),
        ("新化服务区", 27.750, 111.330, U),
        ("新邵服务区", 27.350, 111.450, I),
        ("白仓服务区", 26.900, 111.420, I),
        ("冷水滩服务区", 26.500, 111.600, I),
        ("双牌服务区", 25.950, 111.650, U),
        ("道县服务区", 25.550, 111.600, U),
        ("蓝山服务区", 25.330, 112.150, U),
    ]),
    # G76 Xiamen-Chengdu, Jiangxi border near Rucheng (east) -> Chenzhou -> Ningyuan (west).
    "G76": ("W", "E", (25.55, 113.90), [
        ("汝城服务区", 25.550, 113.700, U),
        ("资兴服务区", 25.900, 113.300, I),
        ("桂阳服务区", 25.750, 112.720, U),
        ("嘉禾服务区", 25.600, 112.370, U),
        ("宁远服务区", 25.580, 111.950, U),
    ]),
    # G0422 Wuhan-Shenzhen, Hubei border (north) -> Pingjiang -> Liuyang -> Liling -> Guidong (south).
    "G0422": ("S", "N", (29.05, 113.80), [
        ("长寿服务区", 28.900, 113.780, VN),
        ("梅仙服务区", 28.700, 113.700, I),
        ("社港服务区", 28.430, 113.600, I),
        ("浏阳服务区", 28.050, 113.550, I),
        ("泗汾服务区", 27.550, 113.480, I),
        ("攸县服务区", 27.050, 113.400, U),
        ("桂东服务区", 26.050, 113.950, U),
    ]),
    # G6021 Hangzhou-Changsha, Jiangxi border (east) -> Liuyang -> Changsha (west).
    "G6021": ("W", "E", (28.45, 114.20), [
        ("大围山服务区", 28.400, 114.050, U),
        ("古港服务区", 28.280, 113.820, I),
        ("黄花服务区", 28.200, 113.250, I),
    ]),
    # G59 Hohhot-Beihai, southern Hunan section: Wugang (north) -> Xinning -> Guangxi border (south).
    "G59": ("S", "N", (27.00, 110.65), [
        ("武冈服务区", 26.750, 110.700, U),
        ("新宁服务区", 26.450, 110.850, U),
        ("崀山服务区", 26.350, 110.780, U),
    ]),
}

# A handful of urban stations (no highway). Names are demo stations at real places.
URBAN = [
    ("长沙五一广场充电站", "Changsha Wuyi Guangchang Chongdianzhan", "changsha-wuyi-square", 28.1960, 112.9770),
    ("长沙南站充电站", "Changsha Nanzhan Chongdianzhan", "changsha-south-station", 28.1470, 113.0650),
    ("长沙梅溪湖充电站", "Changsha Meixihu Chongdianzhan", "changsha-meixihu", 28.1950, 112.8900),
    ("长沙黄花机场充电站", "Changsha Huanghua Jichang Chongdianzhan", "changsha-huanghua-airport", 28.1900, 113.2150),
    ("株洲神农城充电站", "Zhuzhou Shennongcheng Chongdianzhan", "zhuzhou-shennongcheng", 27.8350, 113.1100),
    ("株洲火车站充电站", "Zhuzhou Huochezhan Chongdianzhan", "zhuzhou-railway-station", 27.8450, 113.1500),
    ("湘潭站充电站", "Xiangtan Zhan Chongdianzhan", "xiangtan-railway-station", 27.8550, 112.9100),
    ("岳阳南湖充电站", "Yueyang Nanhu Chongdianzhan", "yueyang-nanhu", 29.3580, 113.1200),
]



def join_syllables(syl) -> str:
    """Pinyin syllables joined into one word, with the apostrophe before a/o/e (Xi'an)."""
    out = syl[0]
    for s in syl[1:]:
        out += ("'" if s[0] in "aoe" else "") + s
    return out


def pinyin(name: str) -> str:
    for suffix, word in (("服务区", "Fuwuqu"), ("停车区", "Tingchequ")):
        if name.endswith(suffix):
            return join_syllables(lazy_pinyin(name[: -len(suffix)])).capitalize() + " " + word
    return join_syllables(lazy_pinyin(name)).capitalize()


def slug(name: str) -> str:
    for suffix in ("服务区", "停车区"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return "".join(lazy_pinyin(name)).lower()


def haversine_km(a, b):
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


# Road distance is longer than the straight line; 1.25 is a typical detour factor for hilly China.
DETOUR = 1.25
POWERS = [60, 120, 120, 160, 160, 180, 240]
BUSY = {"G4": 4, "G60": 2, "G0421": 2, "G5513": 2, "G72": 1, "G55": 1}


def main():
    rng = random.Random(20260203)
    rows = []
    for hw, (inc_dir, dec_dir, entry, areas) in HIGHWAYS.items():
        km = 0.0
        prev = entry
        for name, lat, lon, source in areas:
            km += haversine_km(prev, (lat, lon)) * DETOUR
            prev = (lat, lon)
            kind = "parking_area" if name.endswith("停车区") else "service_area"
            pair = f"{hw.lower()}-{slug(name)}"
            base = 4 if kind == "parking_area" else 6
            for d, travel in ((inc_dir, "ascending"), (dec_dir, "descending")):
                chargers = min(16, base + BUSY.get(hw, 0) + rng.randint(0, 6))
                if kind == "parking_area":
                    chargers = min(chargers, 8)
                rows.append({
                    "id": f"{pair}-{d.lower()}",
                    "pair": pair,
                    "name_zh": name,
                    "name_pinyin": pinyin(name),
                    "kind": kind,
                    "highway": hw,
                    "direction": d,
                    "travel": travel,
                    "km": f"{km:.1f}",
                    "lat": f"{lat:.4f}",
                    "lon": f"{lon:.4f}",
                    "position": "approximate",
                    "chargers": chargers,
                    "power_kw": rng.choice(POWERS),
                    "twin": f"{pair}-{(dec_dir if d == inc_dir else inc_dir).lower()}",
                    "source": source,
                })
    for name, name_py, sl, lat, lon in URBAN:
        rows.append({
            "id": f"urban-{sl}",
            "pair": "",
            "name_zh": name,
            "name_pinyin": name_py,
            "kind": "urban",
            "highway": "",
            "direction": "",
            "travel": "",
            "km": "",
            "lat": f"{lat:.4f}",
            "lon": f"{lon:.4f}",
            "position": "approximate",
            "chargers": rng.randint(6, 16),
            "power_kw": rng.choice([60, 120, 120, 160]),
            "twin": "",
            "source": "demo-urban",
        })
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hunan.csv")
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
