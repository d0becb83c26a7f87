"""The reports view's HTML: the list of partitions and one partition's page (plain HTML, no scripts, no CDN: it
renders inside the Airflow UI's iframe and offline). Links are relative to the page, so the view works under any
mount prefix and any api-server base URL."""

from __future__ import annotations

from collections import Counter
from html import escape

_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}h1{font-size:1.4rem}h2{font-size:1.1rem;
margin-top:1.6rem}table{border-collapse:collapse}td,th{border:1px solid #cbd5e0;padding:.25rem .6rem;
text-align:left}th{background:#edf2f7}.ok{color:#22543d}.fail{color:#9b2c2c;font-weight:600}.muted{color:#718096}
</style>"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>{_STYLE}</head>"
            f"<body>{body}</body></html>")


def _link(href: str, text: str) -> str:
    return f"<a href='{escape(href, quote=True)}'>{escape(text)}</a>"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def index(days: list[str], prefix: str = "partitions/") -> str:
    """The partitions that have reports, newest first."""
    items = "".join(f"<li>{_link(f'{prefix}{day}/', day)}</li>" for day in days)
    body = f"<ul>{items}</ul>" if items else "<p class='muted'>No partition has reports yet.</p>"
    return _page("Crosschannel reports", f"<h1>Crosschannel reports</h1><p>Partitions, newest first.</p>{body}")


def message(text: str) -> str:
    return _page("Crosschannel reports", f"<h1>Crosschannel reports</h1><p>{escape(text)}</p>")


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def _gates(gates: list[dict]) -> str:
    if not gates:
        return "<p class='muted'>No gate has run for this partition.</p>"
    rows = [[_link(g["file"], g["suite"]),
             "<span class='ok'>passed</span>" if g["success"] else "<span class='fail'>failed</span>",
             escape(_or_dash(g["rows"])), escape(_or_dash(g["expectations"])),
             escape(f"{g['failed_critical']} critical, {g['failed_warning']} warning"),
             escape(", ".join(g["failed"])), escape(_skipped(g.get("skipped", [])))] for g in gates]
    return _table(["suite", "result", "rows", "expectations", "failed", "failed expectations",
                   "skipped (a source the retailer has not)"], rows)


def _skipped(reasons: list[str]) -> str:
    """Skipped expectations by why: `13 skipped: needs web or app events ... (sources.events: false)`."""
    why = Counter(reason.split(" needs ", 1)[-1] for reason in reasons)
    return "; ".join(f"{n} skipped: needs {text}" for text, n in why.items())


def _models(models: dict) -> str:
    if not models:
        return "<p class='muted'>No model was trained on this partition (training runs weekly).</p>"
    rows = [[escape(model), _link(m["report"], "report"),
             ", ".join(_link(href, version) for version, href in m["cards"].items()) or "-"]
            for model, m in models.items()]
    return _table(["model", "report", "cards (registry versions trained this day)"], rows)


def _audiences(audiences: dict | None) -> str:
    if not audiences:
        return "<p class='muted'>No audiences were built for this partition.</p>"
    rows = [[escape(name), escape(str(g.get("treatment"))), escape(str(g.get("control")))]
            for name, g in sorted(audiences["groups"].items())]
    skipped = "".join(f"<li>{escape(name)}: {escape(why)}</li>" for name, why in sorted(audiences["skipped"].items()))
    return (f"<p>Hold-out: {escape(str(audiences['holdout_percent']))} % ({_link(audiences['file'], 'JSON')})</p>"
            + _table(["audience", "treatment", "control"], rows) + (f"<p>Not built:</p><ul>{skipped}</ul>"
                                                                      if skipped else ""))


def _activation(activation: dict | None) -> str:
    if not activation:
        return "<p class='muted'>Nothing was activated for this partition.</p>"
    decision = activation["decision"]
    rows = [[escape(name), "on" if d.get("enabled") else "<span class='muted'>off</span>",
             escape(str(d.get("files"))), escape(str(d.get("requests"))), escape(str(d.get("sent"))),
             escape(str(d.get("delivered"))),
             escape(", ".join(f"{k}: {v}" for k, v in sorted((d.get("receipts") or {}).items())) or "-")
             + (f" ({escape(d['skipped'])})" if d.get("skipped") else "")]
            for name, d in sorted(activation["destinations"].items())]
    return (f"<p>Decision: {'send' if decision.get('send') else 'no send'} ({escape(str(decision.get('reason')))});"
            f" attempt {escape(str(decision.get('attempt')))} ({_link(activation['file'], 'JSON')})</p>"
            + _table(["destination", "enabled", "files", "requests", "sent", "delivered", "receipts"], rows))


def _readouts(readouts: dict | None) -> str:
    if not readouts:
        return "<p class='muted'>No campaign readout came due on this partition.</p>"
    page = f"{_link(readouts['page'], 'report')}, " if readouts["page"] else ""
    return (f"<p>{readouts['readouts']} readouts ({readouts['significant']} significant), {readouts['skipped']} "
            f"sends without one: {page}{_link(readouts['file'], 'JSON')}</p>")


def partition(view: dict, run: str = "") -> str:
    """One partition's page: gates and Data Docs, models, audiences, activation, readouts."""
    docs = ", ".join(_link(href, site.replace("_", " ")) for site, href in view["data_docs"].items())
    body = (f"<h1>Crosschannel reports: partition {escape(view['partition'])}</h1>"
            + (f"<p class='muted'>{escape(run)}</p>" if run else "")
            + f"<p>{_link('../', 'All partitions')} · {_link('overview.json', 'this page as JSON')}</p>"
            + "<h2>Quality gates</h2>" + _gates(view["gates"])
            + f"<p>Data Docs: {docs or '<span class=muted>none</span>'}</p>"
            + "<h2>Models</h2>" + _models(view["models"])
            + "<h2>Audiences</h2>" + _audiences(view["audiences"])
            + "<h2>Activation</h2>" + _activation(view["activation"])
            + "<h2>Campaign readouts</h2>" + _readouts(view["readouts"]))
    return _page(f"Crosschannel reports {view['partition']}", body)
