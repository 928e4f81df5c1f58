"""Who may do what: the role the mapping gives an e-mail or a group, and `require`."""

from __future__ import annotations

import pytest

from app.rollout.roles import Identity, NotAuthorized, Role, require, role_for

MAPPING = {
    "alice@example.com": Role.OPERATOR,
    "group:oncall": Role.OPERATOR,
    "group:Admins": Role.ADMIN,
    "viewer@example.com": Role.VIEWER,
}


@pytest.mark.parametrize(
    ("name", "groups", "expected"),
    [
        ("alice@example.com", [], Role.OPERATOR),
        ("ALICE@example.COM", [], Role.OPERATOR),  # e-mails compare case-insensitively
        ("bob@example.com", ["oncall"], Role.OPERATOR),
        ("bob@example.com", ["ADMINS"], Role.ADMIN),  # so do group names
        ("alice@example.com", ["admins"], Role.ADMIN),  # the highest role wins
        ("viewer@example.com", ["oncall"], Role.OPERATOR),
        ("victor@example.com", [], Role.VIEWER),  # not named: the default
        ("victor@example.com", ["contractors"], Role.VIEWER),
        ("oncall", [], Role.VIEWER),  # a user named like a group is not the group
        ("group:oncall", [], Role.OPERATOR),  # … unless the mapping's key is the name itself
    ],
)
def test_the_highest_role_the_mapping_gives_the_name_or_a_group(name, groups, expected):
    assert role_for(name, groups, MAPPING, Role.VIEWER) is expected


def test_an_unnamed_user_gets_the_default_role():
    assert role_for("victor@example.com", [], MAPPING, Role.OPERATOR) is Role.OPERATOR
    assert role_for("victor@example.com", [], {}, Role.VIEWER) is Role.VIEWER


def test_require_refuses_a_lower_role_and_says_what_is_needed():
    victor = Identity("victor@example.com", Role.VIEWER, "oidc")
    with pytest.raises(NotAuthorized) as refused:
        require(victor, Role.OPERATOR, "kill")
    assert str(refused.value) == "victor@example.com is viewer: kill needs the operator role"
    require(Identity("carol@example.com", Role.ADMIN, "oidc"), Role.OPERATOR, "kill")
