#!/usr/bin/env python3
"""Operations-loop numbers from a demo data directory: detection delay and time to repair.
Usage: scripts/ops_report.py DATA_DIR/chargeops.sqlite3"""
import sqlite3, statistics as st, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
cases = db.execute("select id, kind, state, charger_id, opened_at, resolved_at, closed_at, sla_breached from cases").fetchall()
print("cases", len(cases), "by kind", {k: sum(1 for c in cases if c[1]==k) for k in set(c[1] for c in cases)}, "by state", {k: sum(1 for c in cases if c[2]==k) for k in set(c[2] for c in cases)})
delays=[]
for cid, kind, state, ch, opened, *_ in cases:
    if kind != 'faulted': continue
    r = db.execute("select max(at) from status_history where charger_id=? and status='faulted' and at<=?", (ch, opened)).fetchone()[0]
    if r is not None: delays.append((opened - r)/1000)
def q(xs):
    xs=sorted(xs)
    if not xs: return "n/a"
    p=lambda f: xs[min(len(xs)-1,int(f*len(xs)))]
    return f"n={len(xs)} median={st.median(xs):.1f} p90={p(0.9):.1f} max={xs[-1]:.1f}"
print("detection delay (sim s):", q(delays))
tl = {}
for case_id, action, at in db.execute("select case_id, action, at from case_timeline order by id"):
    tl.setdefault(case_id, {}).setdefault(action, at)
def span(a, b):
    out=[]
    for cid, kind, *_ in cases:
        t=tl.get(cid,{})
        if kind=='faulted' and a in t and b in t: out.append((t[b]-t[a])/60000)
    return out
print("assign after open (sim min):", q(span('opened','assign')))
print("travel en_route->on_site (sim min):", q(span('en_route','on_site')))
print("on site->resolved (sim min):", q(span('on_site','resolve')))
print("opened->resolved (sim min):", q(span('opened','resolve')))
print("resolved->verified (sim min):", q(span('resolve','verify')))
print("opened->closed (MTTR, sim min):", q(span('opened','close')))
print("sla breaches:", sum(c[7] for c in cases))
