"""Build an orderly-schedule Problem (JSON) from the Norway residential data, by the simulator's
rules (issue 3): a session occupies the slots from the first starting at or after its plug-in to
the last ending at or before its plug-out, cut at the window end; its energy is capped by its rate
over those slots; capacity = fraction x the ratings of the users with a session in the window (NA
rating: 7.04 kW); Beijing time-of-use prices by local hour. Also writes the forecast history: the
8 weeks before the window.

With V2G_SHARE (e.g. 0.3), every session whose id ends in 0..(10·share − 1) gets V2G: 60 kWh
battery, state of charge max(30 %, full − its energy / 0.95 − 5 kWh), floor 20 % (or the state of
charge if lower), discharge at its charging rate, 95 % each way, 0.05 CNY/kWh wear.

Usage: python3 norway_problem.py DATA_DIR LOCATION START DAYS FRACTION OUT_DIR [V2G_SHARE]
e.g.   python3 norway_problem.py ../shared/data/norway-residential OSL_S 2019-11-04 7 0.25 /tmp/norway
then   cargo run --release -p orderly-schedule --example solve_json -- /tmp/norway/problem.json
       cargo run --release -p orderly-schedule --example replay_json -- /tmp/norway/problem.json /tmp/norway/history.json
"""
import csv, json, datetime as dt, math, sys, os
data, loc, start, days, frac, out = sys.argv[1], sys.argv[2], dt.datetime.fromisoformat(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
os.makedirs(out, exist_ok=True)
end = start + dt.timedelta(days=days)
slots = days*288
rates = {}
for r in csv.reader(open(os.path.join(data, 'users.csv')), delimiter=';'):
    if r[0]=='user_id': continue
    rates[r[0]] = None if r[1]=='NA' else float(r[1].replace(',','.'))
sess=[]; skipped=0
for r in csv.reader(open(os.path.join(data, 'sessions.csv')), delimiter=';'):
    if r[0]!=loc: continue
    if 'NA' in (r[3], r[4], r[6]): skipped+=1; continue
    pin = dt.datetime.fromisoformat(r[3]); pout = dt.datetime.fromisoformat(r[4])
    if not (start <= pin < end): continue
    a = math.ceil((pin-start).total_seconds()/300 - 1e-9)
    d = min(math.floor((pout-start).total_seconds()/300 + 1e-9), slots)
    rate = rates.get(r[1]) or 7.04
    e = float(r[6].replace(',','.'))
    e = min(e, rate*max(d-a,0)*5/60)
    sess.append(dict(id=len(sess), arrival_slot=a, departure_slot=max(d,a), energy_kwh=e, max_kw=rate, min_kw=0.0, priority='normal', v2g=None, user=r[1]))
users = {s['user'] for s in sess}
cap = frac*sum(rates.get(u) or 7.04 for u in users)
def price(t):
    h = (start + dt.timedelta(minutes=5*t)).hour
    return 0.3946 if (h<7 or h>=23) else (0.6950 if (7<=h<10 or 15<=h<18 or 21<=h<23) else 1.0044)
for s in sess: del s['user']
share = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
for s in sess:
    if s['id'] % 10 < round(10*share):
        B = 60.0
        soc = max(0.3*B, B - s['energy_kwh']/0.95 - 5)
        s['v2g'] = dict(battery_kwh=B, soc_kwh=soc, floor_kwh=min(0.2*B, soc), max_discharge_kw=s['max_kw'],
                        charge_efficiency=0.95, discharge_efficiency=0.95, wear_cny_per_kwh=0.05)
json.dump(dict(slot_minutes=5, capacity_kw=[cap]*slots, price=[price(t) for t in range(slots)], sessions=sess), open(os.path.join(out, 'problem.json'),'w'))
print(len(sess), 'sessions', cap, 'kW', sum(s['energy_kwh'] for s in sess), 'kWh requested')
# History: the 8 weeks before the window.
hstart = start - dt.timedelta(days=56)
hist=[]
for r in csv.reader(open(os.path.join(data, 'sessions.csv')), delimiter=';'):
    if r[0]!=loc or 'NA' in (r[3], r[4], r[6]): continue
    pin = dt.datetime.fromisoformat(r[3]); pout = dt.datetime.fromisoformat(r[4])
    if not (hstart <= pin < start): continue
    day0 = dt.datetime(pin.year, pin.month, pin.day)
    a = math.ceil((pin-day0).total_seconds()/300 - 1e-9)
    d = math.floor((pout-day0).total_seconds()/300 + 1e-9)
    if d <= a: continue
    rate = rates.get(r[1]) or 7.04
    e = min(float(r[6].replace(',','.')), rate*(d-a)*5/60)
    if a >= 288: continue
    hist.append(dict(day_type='weekend' if pin.weekday()>=5 else 'weekday', arrival_slot_of_day=a, duration_slots=d-a, energy_kwh=e, max_kw=rate))
json.dump(dict(history=hist, days=dict(weekdays=40, weekend_days=16), calendar=dict(slot_of_day_at_zero=0, day_types=['weekend' if (start+dt.timedelta(days=i)).weekday()>=5 else 'weekday' for i in range(days)])), open(os.path.join(out, 'history.json'),'w'))
print(len(hist), 'historic sessions')
