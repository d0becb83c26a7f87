"""GX Data Docs that render with no network: the gates' site, published as plain files.

GX Core 1.24 writes pages that load jQuery, Bootstrap, bootstrap-table, Font Awesome and Vega from CDNs and its
logo from S3 (with the data context id in the query): offline the index is blank (bootstrap-table draws it) and
results lose their pass/fail icons. `publish_site` copies a built site with every such address pointed at the
copy vendored in include/data_docs/vendor/ (placed in the site as static/vendor/), GX's logo at the one in
its own static/images/, the newsletter footer left out, and the links to static/ made relative to each page's
own folder (GX miscounts the depth for the favicon of validation pages). Links stay relative, so a site works
from file://, from S3 and through the reports view (crosschannel.wiring.ui), which serves a site's files by
their path in it. Imports nothing of GX.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from crosschannel.core.config import BUNDLE_ROOT

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

VENDOR = BUNDLE_ROOT / "include" / "data_docs" / "vendor"
VENDORED = "static/vendor/"  # the vendored files' folder inside a site

# Every CDN address the templates of GX 1.24 load (great_expectations/render/view/templates), and its copy.
CDN = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega/vega-embed.min.js",
}
_GX_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"'()\s]*")
_CDN_ATTRIBUTES = re.compile(r"""\s+(?:integrity|crossorigin)="[^"]*\"""")  # file:// pages cannot pass CORS checks
_NEWSLETTER = re.compile(r"<footer>(?:(?!</footer>).)*?newsletter.*?</footer>\s*", re.DOTALL)
_STATIC = re.compile(r"""(\b(?:src|href)=["'])(?:\./|(?:\.\./)+)?static/""")
_REMOTE = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["'](https?://[^"']+)|url\(['"]?(https?://[^)'"]+)""")


def site_config(base_directory: Path) -> dict:
    """A filesystem Data Docs site without GX's calls to action (tutorial links, walkthrough modal)."""
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(base_directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def offline(page: str, depth: int) -> str:
    """A page of the site `depth` folders below its root, with nothing loaded from the network."""
    up = "../" * depth
    for url, vendored in CDN.items():
        page = page.replace(f'"{url}"', f'"{up}{VENDORED}{vendored}"')
    page = _GX_LOGO.sub(f"{up}static/images/logo-long.png", page)
    page = _CDN_ATTRIBUTES.sub("", page)
    page = _NEWSLETTER.sub("", page)
    return _STATIC.sub(lambda m: f"{m.group(1)}{up}static/", page)


def remote_assets(page: str) -> list[str]:
    """The addresses a page would still load from the network (scripts, stylesheets, images, CSS urls)."""
    return [a or b for a, b in _REMOTE.findall(page)]


def publish_site(site: Path, staging: ObjectStoragePath) -> None:
    """Copy a built site into `staging` (its pages made offline) with the vendored files as static/vendor/."""
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        name = path.relative_to(site)
        content = path.read_bytes()
        if path.suffix == ".html":
            page = offline(content.decode("utf-8"), depth=len(name.parts) - 1)
            if remote := remote_assets(page):
                log.warning("Data Docs page %s still loads %s: add it to crosschannel.core.data_docs.CDN", name, remote)
            content = page.encode("utf-8")
        _write(staging / name.as_posix(), content)
    for path in sorted(p for p in VENDOR.rglob("*") if p.is_file() and p.name != "README.md"):
        _write(staging / f"{VENDORED}{path.relative_to(VENDOR).as_posix()}", path.read_bytes())


def _write(destination: ObjectStoragePath, content: bytes) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(content)
