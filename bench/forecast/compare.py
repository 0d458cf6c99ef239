#!/usr/bin/env python3
"""Side-by-side comparison of the chargeops forecaster with statsforecast on identical targets.

The Rust side (`forecast eval --dump`) writes each evaluated site's hourly occupancy series and
the evaluation origins; this script fits statsforecast AutoETS, MSTL (seasons 24 and 168) and
AutoTheta on the 8 weeks (1344 hours) before every origin, forecasts 24 hours, and scores them
exactly like the Rust evaluation (per horizon, averaged over sites and origins; the 1-24 row is
the mean of the per-horizon values). The baselines are recomputed here from the same series as a
cross-check of the Rust numbers. statsforecast forecasts are clipped to [0, 1] (the target's
range), which can only help them.

Usage:
  .venv-bench/bin/python bench/forecast/compare.py --sessions sessions.csv \
      [--bin "cargo run -q --release -p chargeops-forecast --example forecast --"] [--json out.json]
The command in --bin is given `eval --sessions ... --format json --dump ...`; the default runs
the `chargeops forecast` binary if it is on PATH, else the example.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
os.environ.setdefault("NIXTLA_ID_AS_COL", "1")

from statsforecast import StatsForecast  # noqa: E402
from statsforecast.models import MSTL, AutoETS, AutoTheta, Naive  # noqa: E402

SHOW = [1, 3, 6, 12, 24]


def default_bin():
    if shutil.which("chargeops"):
        return "chargeops forecast"
    return "cargo run -q --release -p chargeops-forecast --example forecast --"


def run_ours(cmd, sessions, dump_path):
    argv = shlex.split(cmd) + ["eval", "--sessions", sessions, "--format", "json", "--dump", dump_path]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def score(preds, actuals):
    """preds, actuals: arrays [n_cases, H] -> per-horizon (mae, rmse)."""
    e = preds - actuals
    return np.abs(e).mean(axis=0), np.sqrt((e * e).mean(axis=0))


def machine():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", required=True, help="canonical session CSV")
    ap.add_argument("--bin", default=default_bin(), help="command that runs `forecast` subcommands")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--models", default="AutoETS,MSTL,AutoTheta")
    ap.add_argument("--n-jobs", type=int, default=1, help="statsforecast worker processes (timings are wall clock)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--reuse", help="take the statsforecast results from an earlier --json output instead of refitting")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        dump_path = os.path.join(tmp, "dump.json")
        ours = run_ours(args.bin, args.sessions, dump_path)
        with open(dump_path) as f:
            dump = json.load(f)

    H = dump["horizon"]
    train = dump["train_hours"]
    origins = dump["origins"]
    start = pd.Timestamp(dump["start"]).tz_convert("UTC").tz_localize(None)
    sites = dump["sites"]
    series = [np.asarray(s["occupancy"], dtype=float) for s in sites]
    actual = np.array([[y[o : o + H] for y in series] for o in origins])  # [origins, sites, H]
    actual_flat = actual.reshape(-1, H)

    # Baselines from the same series (a cross-check of the Rust numbers).
    def baseline(fn):
        return np.array([[fn(y, o) for y in series] for o in origins]).reshape(-1, H)

    hs = np.arange(H)
    base = {
        "seasonal_naive_24h": baseline(lambda y, o: y[o + hs - 24]),
        "seasonal_naive_168h": baseline(lambda y, o: y[o + hs - 168]),
        "last_value": baseline(lambda y, o: np.repeat(y[o - 1], H)),
        "mean_same_hour_4w": baseline(lambda y, o: np.mean([y[o + hs - 168 * k] for k in range(1, 5)], axis=0)),
    }

    models = {
        "AutoETS": lambda: AutoETS(season_length=24),
        "MSTL": lambda: MSTL(season_length=[24, 168]),
        "AutoTheta": lambda: AutoTheta(season_length=24),
    }
    wanted = [m for m in args.models.split(",") if m]
    sf_preds = {m: np.zeros((len(origins), len(sites), H)) for m in wanted}
    sf_time = {m: 0.0 for m in wanted}
    reused = None
    if args.reuse:
        with open(args.reuse) as f:
            reused = json.load(f)
        if reused["sites"] != len(sites) or reused["origins"] != len(origins):
            sys.exit("--reuse: the earlier run evaluated other sites or origins")
    for oi, o in enumerate(origins if reused is None else []):
        frames = []
        for si, y in enumerate(series):
            ds = start + pd.to_timedelta(np.arange(o - train, o), unit="h")
            frames.append(pd.DataFrame({"unique_id": si, "ds": ds, "y": y[o - train : o]}))
        df = pd.concat(frames, ignore_index=True)
        for m in wanted:
            sf = StatsForecast(models=[models[m]()], freq="h", n_jobs=args.n_jobs, fallback_model=Naive())
            t0 = time.perf_counter()
            fc = sf.forecast(df=df, h=H)
            sf_time[m] += time.perf_counter() - t0
            col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
            fc = fc.sort_values(["unique_id", "ds"])
            vals = fc[col].to_numpy().reshape(len(sites), H)
            sf_preds[m][oi] = np.clip(np.nan_to_num(vals), 0.0, 1.0)
        print(f"origin {oi + 1}/{len(origins)} done", file=sys.stderr, flush=True)

    results = {}
    for name, p in base.items():
        results[name] = score(p, actual_flat)
    for m in wanted:
        if reused is None:
            results[m] = score(sf_preds[m].reshape(-1, H), actual_flat)
        else:
            results[m] = (np.array(reused["methods"][m]["mae"]), np.array(reused["methods"][m]["rmse"]))
            sf_time[m] = reused["seconds_per_origin"][m] * len(origins)
    ours_mae = np.array([h["model"]["mae"] for h in ours["horizons"]])
    ours_rmse = np.array([h["model"]["rmse"] for h in ours["horizons"]])
    results = {"chargeops": (ours_mae, ours_rmse), **results}
    # Rust's own baselines, to check the cross-check.
    for name in base:
        rust = np.array([h[name]["mae"] for h in ours["horizons"]])
        if not np.allclose(rust, results[name][0], atol=1e-6):
            print(f"warning: {name} differs between Rust and Python: {rust[:3]} vs {results[name][0][:3]}", file=sys.stderr)

    names = list(results)
    if args.markdown:
        print(f"{len(sites)} sites, {len(origins)} origins, horizons 1-{H}; statsforecast fitted on {train} h before each origin.")
        for metric, k in (("MAE", 0), ("RMSE", 1)):
            print()
            print(f"| {metric} | " + " | ".join(names) + " |")
            print("|---" * (len(names) + 1) + "|")
            rows = [(f"h={h}", lambda v, h=h: v[h - 1]) for h in SHOW] + [("**mean 1-24**", lambda v: v.mean())]
            for label, pick in rows:
                vals = [pick(results[n][k]) for n in names]
                best = min(vals)
                cells = [f"**{v:.4f}**" if v == best else f"{v:.4f}" for v in vals]
                print(f"| {label} | " + " | ".join(cells) + " |")
        print()
    print(f"sessions: {args.sessions}")
    print(f"machine: {machine()}")
    print(f"sites {len(sites)}, origins {len(origins)}, horizons 1-{H}, statsforecast fitted on {train} h before each origin")
    for metric, k in (("MAE", 0), ("RMSE", 1)):
        print()
        print(f"{metric:<6}" + "".join(f"{n:>20}" for n in names))
        for h in SHOW:
            print(f"h={h:<4}" + "".join(f"{results[n][k][h - 1]:>20.4f}" for n in names))
        print(f"{'1-24':<6}" + "".join(f"{results[n][k].mean():>20.4f}" for n in names))
    print()
    ours_t = ours.get("fit_seconds_per_origin", float("nan"))
    print(f"fit+forecast seconds per origin ({len(sites)} sites): chargeops {ours_t:.4f}"
          + "".join(f", {m} {sf_time[m] / len(origins):.3f}" for m in wanted))
    print(f"chargeops P90 coverage: {100 * ours.get('p90_coverage', float('nan')):.1f}%")
    best = {m: (results[m][0].mean(), results[m][1].mean()) for m in names if m != "chargeops"}
    om, orm = results["chargeops"][0].mean(), results["chargeops"][1].mean()
    beaten = [m for m, (a, r) in best.items() if om < a and orm < r]
    print(f"chargeops lower on both mean MAE and mean RMSE than: {', '.join(beaten) or 'none'}")
    not_beaten = [m for m in best if m not in beaten]
    if not_beaten:
        print(f"NOT beaten on both: {', '.join(not_beaten)}")
    sn = results["seasonal_naive_168h"]
    worse = [h + 1 for h in range(H) if ours_mae[h] > sn[0][h] or ours_rmse[h] > sn[1][h]]
    print(f"horizons where chargeops is worse than seasonal naive 168h: {worse or 'none'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "sessions": args.sessions, "machine": machine(), "sites": len(sites), "origins": len(origins),
                "methods": {n: {"mae": results[n][0].tolist(), "rmse": results[n][1].tolist()} for n in names},
                "seconds_per_origin": {"chargeops": ours_t, **{m: sf_time[m] / len(origins) for m in wanted}},
                "p90_coverage": ours.get("p90_coverage"),
                "n_jobs": args.n_jobs,
            }, f, indent=1)


if __name__ == "__main__":
    main()
