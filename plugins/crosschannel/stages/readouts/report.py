"""The readouts due on a partition, committed to the reports zone, and the stakeholders' digest of them.

    <root>/reports/dt=P/readouts/readouts.json   every readout due on P (crosschannel.stages.readouts.stats), and
                                                 the sends that had none (not sent, no audience partition)
    <root>/reports/dt=P/readouts/readouts.html   the same as a table, each conversion uplift's interval drawn
    <root>/reports/dt=P/readouts/groups/         the SQL job's group statistics (a committed partition)
"""

from __future__ import annotations

import datetime as dt
import html

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.readouts import sends, stats


def build(day: dt.date, due: list[dict], rows: list[dict]) -> dict:
    """Every due send's readout from its group rows (a group without rows has no members)."""
    settings = get_config().readouts
    arms: dict[tuple, dict] = {}
    for row in rows:
        arms.setdefault((row["audience"], row["send_day"], row["horizon_days"]), {})[row["assignment"]] = row
    readouts = []
    for send in (s for s in due if s["status"] == sends.DUE):
        found = arms.get((send["audience"], send["send_day"], send["horizon_days"]), {})
        treatment, control = (stats.Group.of(found[arm]) if arm in found else stats.Group(0, 0)
                              for arm in ("treatment", "control"))
        first = dt.date.fromisoformat(send["send_day"]) + dt.timedelta(days=1)
        readouts.append({**send, "window": [first.isoformat(), day.isoformat()],
                         **stats.readout(treatment, control, confidence=settings.confidence,
                                         target_power=settings.power,
                                         min_relative_uplift=settings.min_relative_uplift),
                         "recommended": stats.bought_listed(found.get("treatment"), found.get("control"),
                                                            settings.confidence)})
    skipped = [{k: s[k] for k in ("audience", "send_day", "horizon_days", "status")}
               for s in due if s["status"] != sends.DUE]
    return {"partition": day.isoformat(), "horizons_days": list(settings.horizons_days),
            "confidence": settings.confidence, "readouts": readouts, "skipped": skipped}


def commit(day: dt.date, result: dict) -> dict:
    """Write the HTML, then the JSON (the record readers take); the figures for the asset event."""
    page = paths.readouts(day, "readouts.html")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html(result))
    storage.write_json(paths.readouts(day, "readouts.json"), result)
    readouts = result["readouts"]
    return {"partition": result["partition"], "readouts": len(readouts),
            "significant": sum(r["significant"] for r in readouts),
            "underpowered": sum(r["underpowered"] for r in readouts),
            "report": storage.url_of(paths.readouts(day, "readouts.json")), "html": storage.url_of(page)}


def read(day: dt.date) -> dict:
    return storage.read_json(paths.readouts(day, "readouts.json"))


def _pp(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.2f} pp"


def _interval(bounds: list[float] | None, scale: float = 100, unit: str = " pp") -> str:
    return "-" if bounds is None else f"[{bounds[0] * scale:+.2f}, {bounds[1] * scale:+.2f}]{unit}"


def _svg(readout: dict, extent: float) -> str:
    """The conversion uplift's interval on a scale of +-extent (pp) around 0: a line from bound to bound, a dot at
    the estimate; green or red when the interval excludes 0."""
    width, height, pad = 240, 18, 6

    def x(value: float) -> float:
        return pad + (value * 100 + extent) / (2 * extent) * (width - 2 * pad)

    conversion = readout.get("conversion")
    zero = f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{height}" stroke="#999" stroke-dasharray="2,2"/>'
    if not conversion or conversion["interval"] is None:
        return f'<svg width="{width}" height="{height}">{zero}</svg>'
    low, high = conversion["interval"]
    colour = "#888" if not readout["significant"] else "#2a7" if low > 0 else "#c33"
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="{_interval([low, high])}">{zero}'
            f'<line x1="{x(low):.1f}" y1="9" x2="{x(high):.1f}" y2="9" stroke="{colour}" stroke-width="3"/>'
            f'<circle cx="{x(conversion["uplift"]):.1f}" cy="9" r="4" fill="{colour}"/></svg>')


def _recommended(figures: dict | None) -> str:
    """"Bought a recommended item": the two groups' rates, the uplift and its interval ('-' without lists)."""
    if not figures:
        return "-"
    t, c = figures["treatment"], figures["control"]
    return (f"{t['rate']:.2%} of {t['listed']:,} / {c['rate']:.2%} of {c['listed']:,}, {_pp(figures['uplift'])} "
            f"{_interval(figures['interval'])}")


def render_html(result: dict) -> str:
    readouts = result["readouts"]
    bounds = [abs(b) * 100 for r in readouts if r.get("conversion") and r["conversion"]["interval"]
              for b in r["conversion"]["interval"]]
    extent = max([1.0, *bounds]) * 1.05
    rows = []
    for r in readouts:
        t, c = r["treatment"], r["control"]
        conversion, orders = r.get("conversion") or {}, r.get("incremental", {}).get("orders") or {}
        revenue = r.get("incremental", {}).get("revenue") or {}
        flags = ", ".join(f for f, on in (("significant", r["significant"]), ("underpowered", r["underpowered"]))
                          if on) or "-"
        rate = "{:.2%}".format
        cells = [html.escape(r["audience"]), r["send_day"], f"{r['horizon_days']} d",
                 f"{t['members']:,} ({rate(t['conversion_rate']) if t['members'] else '-'})",
                 f"{c['members']:,} ({rate(c['conversion_rate']) if c['members'] else '-'})",
                 _pp(conversion.get("uplift")), _interval(conversion.get("interval")), _svg(r, extent),
                 _interval(conversion.get("relative_interval"), unit=" %"),
                 "-" if not orders else f"{orders['estimate']:+,.1f} {_interval(orders['interval'], 1, '')}",
                 "-" if not revenue else f"{revenue['estimate']:+,.0f} {_interval(revenue['interval'], 1, '')}",
                 _recommended(r.get("recommended")),
                 html.escape(r["status"] if r["status"] != "ok" else flags)]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    header = ("audience", "send day", "horizon", "treatment (conv.)", "control (conv.)", "uplift",
              f"{result['confidence']:.0%} interval", f"interval, +-{extent:.1f} pp around 0", "relative interval",
              "incremental orders", "incremental revenue", "bought a recommended item (treatment / control)", "flags")
    skipped = "".join(f"<li>{html.escape(s['audience'])}, sent {s['send_day']}, {s['horizon_days']} d: "
                      f"{html.escape(s['status'])}</li>" for s in result["skipped"])
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>Campaign readouts {result["partition"]}</title>'
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
            "text-align:right}td:first-child{text-align:left}</style></head><body>"
            f"<h1>Campaign readouts due on {result['partition']}</h1>"
            f"<p>Treatment against control (the stable hold-out) of each send, over the days after it to "
            f"{result['partition']}: the uplift in conversion (any order), {result['confidence']:.0%} intervals. "
            f"Methods: {html.escape(stats.METHODS['conversion'])}; per member: "
            f"{html.escape(stats.METHODS['per_member'])}.</p>"
            "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(rows)
            + "</table>" + (f"<h2>No readout</h2><ul>{skipped}</ul>" if skipped else "") + "</body></html>\n")


def digest(result: dict) -> tuple[str, str]:
    """The stakeholders' digest of the readouts due on a partition: a subject and plain text."""
    readouts = result["readouts"]
    significant = sum(r["significant"] for r in readouts)
    subject = (f"[crosschannel] campaign readouts for {result['partition']}: {len(readouts)} due, "
               f"{significant} significant")
    lines = [f"Treatment against control, {result['confidence']:.0%} intervals (conversion: any order in the window).",
             ""]
    for r in readouts:
        head = f"{r['audience']}, sent {r['send_day']}, after {r['horizon_days']} days:"
        if r["status"] != "ok":
            lines.append(f"{head} {r['status']}")
            continue
        t, c, conversion = r["treatment"], r["control"], r["conversion"]
        orders = r["incremental"]["orders"]
        lines.append(f"{head} conversion {t['conversion_rate']:.2%} ({t['members']:,} treated) vs "
                     f"{c['conversion_rate']:.2%} ({c['members']:,} control), uplift {_pp(conversion['uplift'])} "
                     f"{_interval(conversion['interval'])}, incremental orders {orders['estimate']:+,.1f}"
                     + (f", bought a recommended item {_recommended(r['recommended'])}" if r.get("recommended") else "")
                     + (" [significant]" if r["significant"] else "")
                     + (" [underpowered: groups too small for the minimum effect]" if r["underpowered"] else ""))
    return subject, "\n".join(lines)
