"""``catalog``: the smoke repository is listed in ``/v2/_catalog`` and its tags in ``tags/list``.

It runs alongside the push checks and starts once their pushes are done (not their pulls).

The catalog is read as a client pages through it: the first page asks for one entry, so on any registry
holding another repository before ``regdeploy-smoke`` the next page is found through the ``Link`` header
(2.8 sends one when a full page is not the end of the listing); later pages follow those links with large
pages until the repository turns up.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, Blocked, CheckFailed, describe_error, pair, registry_error
from regdeploy.verify.registry_api import RegistryClient

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
PAGE = 1000  # catalog.maxentries: the most a registry gives in one page by default
MAX_PAGES = 100


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` target of a Link header, as a path with its query."""
    match = _LINK_NEXT.search(header or "")
    if not match:
        return None
    parts = urllib.parse.urlsplit(match.group(1))
    return parts.path + ("?" + parts.query if parts.query else "")


def with_page_size(path: str, n: int) -> str:
    """*path* with its ``n`` query parameter set to *n* (other parameters, such as ``last``, kept)."""
    parts = urllib.parse.urlsplit(path)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "n"]
    query.append(("n", str(n)))
    return parts.path + "?" + urllib.parse.urlencode(query)


@dataclass(frozen=True)
class CatalogSearch:
    found: bool
    pages: int
    seen: int


def find_repository(client: RegistryClient, repository: str) -> CatalogSearch:
    path: str | None = "/v2/_catalog?n=1"
    pages = seen = 0
    while path is not None and pages < MAX_PAGES:
        resp = client.request("GET", path)
        if resp.status != 200:
            raise CheckFailed(f"GET {path} answered {registry_error(resp)}")
        pages += 1
        repos = [str(r) for r in (resp.json() or {}).get("repositories") or []]
        seen += len(repos)
        link = next_link(resp.headers.get("link"))
        if repository in repos:
            return CatalogSearch(True, pages, seen)
        path = with_page_size(link, PAGE) if link else None
    return CatalogSearch(False, pages, seen)


def list_tags(client: RegistryClient, repository: str) -> list[str]:
    path: str | None = f"/v2/{repository}/tags/list"
    tags: list[str] = []
    pages = 0
    while path is not None and pages < MAX_PAGES:
        resp = client.request("GET", path)
        if resp.status != 200:
            raise CheckFailed(f"GET {path} answered {registry_error(resp)}")
        pages += 1
        tags += [str(t) for t in (resp.json() or {}).get("tags") or []]
        path = next_link(resp.headers.get("link"))
    return tags


def check_catalog(ctx: VerifyContext) -> str:
    ctx.wait_for_pushes("catalog")
    if not ctx.pushed:
        raise Blocked(f"nothing was pushed ({' and '.join(ctx.pushes) or 'no push check ran'} failed)")
    client = ctx.target.client()
    repo = ctx.target.smoke_repository
    wanted = [p.tag for p in ctx.pushed]
    try:
        search, tags = pair(lambda: find_repository(client, repo), lambda: list_tags(client, repo))
    except NETWORK_ERRORS as exc:
        raise CheckFailed(describe_error(exc)) from None
    if not search.found:
        raise CheckFailed(
            f"{repo} is not in the catalog ({search.seen} repositories on {search.pages} pages read)"
        )
    missing = [t for t in wanted if t not in tags]
    if missing:
        raise CheckFailed(f"{repo}/tags/list lacks {', '.join(missing)} (it lists {len(tags)} tags)")
    where = "on the first page" if search.pages == 1 else f"on page {search.pages}, following Link headers"
    return f"{repo} listed in the catalog {where} (n=1 first); tags/list has {', '.join(wanted)}"
