"""The ACL: ordered, first match wins, default deny; ${account}; "" is anonymous, "*" signed in."""

from __future__ import annotations

from regdeploy.tokens.acl import AclEntry, account_matches, authorize, first_match, name_matches
from regdeploy.tokens.scope import Scope

ACL = (
    AclEntry("admin", "*", ("*",)),
    AclEntry("", "public/*", ("pull",)),
    AclEntry("ci-*", "builds/*", ("pull", "push")),
    AclEntry("*", "${account}/*", ("pull", "push", "delete")),
    AclEntry("*", "catalog", ("*",), type="registry"),
    AclEntry("*", "public/*", ("pull",)),
)


def grant(account, *scopes):
    requested = [Scope(*s.split(":")[:2], tuple(s.split(":")[2].split(","))) for s in scopes]
    return [str(s) for s in authorize(ACL, account, requested)]


def test_account_patterns():
    assert account_matches("*", "alice")
    assert not account_matches("*", "")  # "*" is any signed-in account, not anonymous
    assert account_matches("", "")
    assert not account_matches("", "alice")
    assert account_matches("ci-*", "ci-main")
    assert not account_matches("ci-*", "")
    assert account_matches("alice", "alice")
    assert not account_matches("alice", "Alice")  # case-sensitive


def test_own_namespace():
    assert grant("alice", "repository:alice/app:pull,push") == ["repository:alice/app:pull,push"]
    assert grant("alice", "repository:alice/a/b:delete") == ["repository:alice/a/b:delete"]  # * crosses /


def test_denied_scope_stays_in_the_answer_with_no_actions():
    assert grant("alice", "repository:bob/app:pull,push") == ["repository:bob/app:"]


def test_first_match_wins_and_granted_is_the_intersection():
    # "ci-main/x" is the account's own namespace, but "builds/*" for ci-* comes first for builds/
    assert grant("ci-main", "repository:builds/x:pull,push,delete") == ["repository:builds/x:pull,push"]
    # admin's "*" grants whatever was asked, and nothing more
    assert grant("admin", "repository:any/thing:pull") == ["repository:any/thing:pull"]


def test_anonymous():
    assert grant("", "repository:public/x:pull,push") == ["repository:public/x:pull"]
    assert grant("", "repository:alice/x:pull") == ["repository:alice/x:"]
    # ${account} never matches the anonymous account (no "/x" namespace for it)
    assert not name_matches("${account}/*", "", "/x")


def test_registry_type_is_separate_from_repository():
    assert grant("alice", "registry:catalog:*") == ["registry:catalog:*"]
    assert grant("", "registry:catalog:*") == ["registry:catalog:"]
    # a repository called "catalog" is not the catalog
    assert first_match(ACL, "bob", Scope("repository", "catalog", ("pull",))) is None


def test_unknown_type_gets_nothing():
    assert grant("admin", "weird:thing:pull") == ["weird:thing:"]


def test_account_is_literal_inside_the_name_pattern():
    # an account "a*" must not turn "${account}/*" into "a*/*" (which would match "alice/x")
    assert not name_matches("${account}/*", "a*", "alice/x")
    assert name_matches("${account}/*", "a*", "a*/x")
    assert not name_matches("${account}/*", "[ab]", "a/x")
    assert name_matches("${account}/*", "acme/app", "acme/app/img")


def test_explicit_empty_actions_deny_before_a_broader_entry():
    acl = (AclEntry("*", "secret/*", ()), AclEntry("*", "*", ("pull",)))
    assert authorize(acl, "bob", [Scope("repository", "secret/x", ("pull",))])[0].actions == ()
    assert authorize(acl, "bob", [Scope("repository", "other", ("pull",))])[0].actions == ("pull",)


def test_no_acl_denies_everything():
    assert authorize((), "admin", [Scope("repository", "a", ("pull",))])[0].actions == ()
