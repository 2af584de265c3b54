"""Members join by e-mail invitation only (CONTRACT §1).

An account ADMIN invites an address and a role; the address gets a one-time link (its token
stored hashed) that sets a password and creates the login of a new person, or lets an existing
login join after signing in and accepting. Inviting answers the same whoever the address
belongs to; no page adds a login of the installation to an account directly.

The mail tests go through Django's SMTP backend to a real SMTP server (aiosmtpd) on localhost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import re
import socket
from dataclasses import dataclass, field

import environ
import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from metering import keys, services
from metering.errors import InvitationNotUsable
from metering.models import Invitation, Membership
from tests.factories import AccountFactory, MembershipFactory, UserFactory
from tests.threads import run_threads

pytestmark = pytest.mark.django_db

User = get_user_model()
LINK = re.compile(r"(?P<site>https?://[^/\s]+)(?P<path>/invitations/(?P<token>[^/\s]+)/)")
STRONG_PASSWORD = "correct-horse-battery-staple-42"


def url(model_name: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:metering_{model_name}_{view}", args=args)


# --- a real SMTP sink ------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """What an SMTP server on localhost received: one parsed message per DATA."""

    port: int
    envelopes: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(envelope.content, policy=email.policy.default)
            for envelope in self.envelopes
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_sink(settings):
    """An aiosmtpd server; Django's SMTP backend sends to it, configured as EMAIL_URL says."""
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    # The same parsing as config.settings.base applies to EMAIL_URL.
    for name, value in environ.Env.email_url_config(f"smtp://127.0.0.1:{sink.port}").items():
        setattr(settings, name, value)
    settings.DEFAULT_FROM_EMAIL = "metering@example.com"
    try:
        yield sink
    finally:
        controller.stop()


def body_of(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def link_in(message: email.message.EmailMessage) -> re.Match:
    match = LINK.search(body_of(message))
    assert match, body_of(message)
    return match


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def admin_client(member):
    return member("ADMIN")


@pytest.fixture
def invite(admin_client, django_capture_on_commit_callbacks):
    """``invite(address, role)``: the ADMIN's invitation form posted, its mail sent on commit."""

    def send(address: str, role: str = "OPERATOR", client=None):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or admin_client).post(
                url("invitation", "add"), {"email": address, "role": role}
            )

    return send


@pytest.fixture
def invitation_link(account, django_capture_on_commit_callbacks, mailoutbox):
    """``invitation_link(address, role)``: invited by the service; the link from its mail."""

    def make(address: str, role: str = "OPERATOR") -> str:
        with django_capture_on_commit_callbacks(execute=True):
            services.invite_member(account=account, email=address, role=role)
        return LINK.search(mailoutbox[-1].body)["path"]

    return make


def is_member(user, account) -> bool:
    return Membership.objects.filter(user=user, account=account).exists()


# --- the old path is gone --------------------------------------------------------------------


def test_no_page_adds_a_login_of_the_installation_to_an_account(admin_client, account):
    newcomer = UserFactory(username="newcomer")

    assert admin_client.get(url("membership", "add")).status_code == 403
    response = admin_client.post(url("membership", "add"), {"user": "newcomer", "role": "VIEWER"})

    assert response.status_code == 403
    assert not is_member(newcomer, account)
    # The list links to the invitation form instead.
    assert url("invitation", "add").encode() in admin_client.get(url("membership")).content


def test_only_an_admin_invites(member, account):
    manager = member("MANAGER")
    assert manager.get(url("invitation", "add")).status_code == 403
    response = manager.post(url("invitation", "add"), {"email": "a@example.org", "role": "ADMIN"})
    assert response.status_code == 403
    assert not Invitation.objects.exists()


# --- the same answer for every address -------------------------------------------------------


def test_inviting_answers_the_same_whoever_the_address_belongs_to(
    admin_client, account, other_account, django_capture_on_commit_callbacks, mailoutbox
):
    UserFactory(username="known", email="Known@Example.org")
    UserFactory(username="named@example.org", email="")
    MembershipFactory(account=account, user__email="member@example.org", role="VIEWER")
    MembershipFactory(account=other_account, user__email="elsewhere@example.org")
    addresses = [
        "nobody@example.org",  # no login
        "known@example.org",  # a login's e-mail
        "named@example.org",  # a login's username
        "member@example.org",  # a member of the account already
        "elsewhere@example.org",  # a member of another account
    ]
    answers = []
    for address in addresses:
        mailoutbox.clear()
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = admin_client.post(
                url("invitation", "add"), {"email": address, "role": "VIEWER"}
            )
        (sent,) = mailoutbox
        mail_text = LINK.sub("LINK", sent.body)
        shown = admin_client.get(response["Location"]).context["messages"]
        answers.append(
            {
                "status": response.status_code,
                "location": response["Location"],
                "messages": [str(m).replace(address, "ADDRESS") for m in shown],
                "queries": len(queries),
                "mail": (sent.subject, mail_text, sent.to == [address]),
            }
        )

    assert all(answer == answers[0] for answer in answers), answers
    assert answers[0]["status"] == 302
    assert answers[0]["location"] == url("invitation")
    assert Invitation.objects.filter(account=account).count() == len(addresses)
    # Nobody joined by being invited.
    assert Membership.objects.filter(account=account).count() == 2  # the ADMIN, the member


def test_an_unusable_address_gets_the_same_refusal_for_everyone(admin_client):
    UserFactory(username="x", email="not-an-address")
    for address in ("not-an-address", "still not one"):
        response = admin_client.post(url("invitation", "add"), {"email": address, "role": "VIEWER"})
        assert response.status_code == 200
        assert list(response.context["adminform"].form.errors) == ["email"]
    assert not Invitation.objects.exists()


# --- a new person: mail, link, password ------------------------------------------------------


def test_a_new_person_sets_a_password_through_the_mailed_link_and_joins(
    smtp_sink, invite, account, settings
):
    response = invite("New.Person@Example.org", "OPERATOR")
    assert response.status_code == 302

    (message,) = smtp_sink.messages
    assert smtp_sink.envelopes[0].rcpt_tos == ["new.person@example.org"]
    assert message["From"] == "metering@example.com"
    assert message["To"] == "new.person@example.org"
    assert "Acme" in message["Subject"]
    link = link_in(message)
    assert link["site"] == settings.SITE_URL
    # Only the token's digest is stored.
    invitation = Invitation.objects.get()
    assert invitation.token_hash == keys.digest(link["token"])
    assert link["token"] not in str(list(Invitation.objects.values_list()))

    person = Client()
    page = person.get(link["path"])
    assert page.status_code == 200
    assert b'name="new_password1"' in page.content
    assert b"new.person@example.org" in page.content
    assert not User.objects.filter(email="new.person@example.org").exists()

    response = person.post(
        link["path"], {"new_password1": STRONG_PASSWORD, "new_password2": STRONG_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    user = User.objects.get(email="new.person@example.org")
    assert user.username == "new.person@example.org"
    assert user.check_password(STRONG_PASSWORD)
    assert user.is_staff and not user.is_superuser
    assert Membership.objects.get(user=user).account == account
    assert Membership.objects.get(user=user).role == "OPERATOR"
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    # Signed in: the admin opens; the new login signs in with its password too.
    assert person.get(reverse("admin:index")).status_code == 200
    assert Client().login(username="new.person@example.org", password=STRONG_PASSWORD)


def test_a_link_works_once(invite, smtp_sink):
    invite("once@example.org")
    path = link_in(smtp_sink.messages[0])["path"]
    body = {"new_password1": STRONG_PASSWORD, "new_password2": STRONG_PASSWORD}
    assert Client().post(path, body).status_code == 302

    again = Client()
    assert again.get(path).status_code == 404
    response = again.post(path, {**body, "new_password1": "another-password-99"})
    assert response.status_code == 404
    assert b"expired, was used already or was revoked" in response.content
    assert User.objects.filter(email="once@example.org").count() == 1
    assert User.objects.get(email="once@example.org").check_password(STRONG_PASSWORD)


def test_a_weak_password_is_refused_and_the_link_still_works(invitation_link):
    path = invitation_link("weak@example.org")
    person = Client()
    response = person.post(path, {"new_password1": "123", "new_password2": "123"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not User.objects.filter(email="weak@example.org").exists()
    assert Invitation.objects.get().accepted_at is None
    response = person.post(
        path, {"new_password1": STRONG_PASSWORD, "new_password2": STRONG_PASSWORD}
    )
    assert response.status_code == 302


def test_opening_the_link_does_not_use_it(invitation_link):
    path = invitation_link("opened@example.org")
    assert Client().get(path).status_code == 200
    assert Client().get(path).status_code == 200
    assert Invitation.objects.get().accepted_at is None


# --- a login of the installation: joins only after accepting ---------------------------------


@pytest.fixture
def existing(other_account):
    """A login of the installation, member of another account only."""
    user = UserFactory(username="claire", email="claire@example.org", password="pw-claire-1")
    MembershipFactory(user=user, account=other_account, role="ADMIN")
    return user


def places_as(user, account) -> int:
    client = APIClient()
    client.force_login(user)
    return client.get("/api/v1/places/", {"account_id": str(account.pk)}).status_code


def test_an_existing_login_is_not_a_member_until_it_accepts(smtp_sink, invite, existing, account):
    invite("claire@example.org", "MANAGER")

    (message,) = smtp_sink.messages
    assert smtp_sink.envelopes[0].rcpt_tos == ["claire@example.org"]
    path = link_in(message)["path"]
    assert not is_member(existing, account)
    assert places_as(existing, account) == 403

    person = Client()
    page = person.get(path)
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    assert b"new_password1" not in page.content  # no new login for an address that has one
    assert not is_member(existing, account)

    response = person.post(path, {"username": "claire", "password": "pw-claire-1"})

    assert response.status_code == 302
    assert Membership.objects.get(user=existing, account=account).role == "MANAGER"
    assert places_as(existing, account) == 200
    existing.refresh_from_db()
    assert existing.check_password("pw-claire-1")  # the login is unchanged
    assert Client().get(path).status_code == 404  # used up


def test_a_signed_in_login_accepts_with_one_click(invitation_link, existing, account):
    path = invitation_link("claire@example.org")
    client = Client()
    client.force_login(existing)
    page = client.get(path)
    assert page.status_code == 200
    assert page.context["mode"] == "join"
    assert not is_member(existing, account)

    assert client.post(path).status_code == 302
    assert is_member(existing, account)


def test_another_login_cannot_accept(invitation_link, existing, account):
    stranger = UserFactory(username="mallory", email="mallory@example.org", password="pw-m-123")
    path = invitation_link("claire@example.org")

    # Signing in as another login on the page: refused, not signed in.
    client = Client()
    response = client.post(path, {"username": "mallory", "password": "pw-m-123"})
    assert response.status_code == 403
    assert b"claire@example.org" in response.content
    assert "_auth_user_id" not in client.session
    # Already signed in as another login: asked to sign in as the invited one.
    signed_in = Client()
    signed_in.force_login(stranger)
    assert signed_in.get(path).context["mode"] == "sign_in"
    assert signed_in.post(path).status_code == 200  # the sign-in form, with its errors
    assert not is_member(stranger, account) and not is_member(existing, account)
    assert Invitation.objects.get().accepted_at is None


def test_a_member_invited_again_keeps_their_role(invitation_link, account):
    membership = MembershipFactory(account=account, role="VIEWER", user__email="m@example.org")
    path = invitation_link("m@example.org", "ADMIN")
    client = Client()
    client.force_login(membership.user)
    assert client.post(path).status_code == 302
    membership.refresh_from_db()
    assert membership.role == "VIEWER"  # roles change on the membership's page


# --- expiry, revocation, replacement ---------------------------------------------------------


def test_an_expired_link_is_refused(invitation_link):
    path = invitation_link("late@example.org")
    Invitation.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    body = {"new_password1": STRONG_PASSWORD, "new_password2": STRONG_PASSWORD}
    assert Client().post(path, body).status_code == 404
    assert not User.objects.filter(email="late@example.org").exists()


def test_invitations_expire_after_a_week(account):
    before = timezone.now()
    services.invite_member(account=account, email="week@example.org", role="VIEWER")
    expires_at = Invitation.objects.get().expires_at
    assert dt.timedelta(days=7) <= expires_at - before < dt.timedelta(days=7, minutes=1)


def test_a_revoked_link_is_refused(invitation_link, admin_client):
    path = invitation_link("revoked@example.org")
    invitation = Invitation.objects.get()

    response = admin_client.post(
        url("invitation"),
        {"action": "revoke_selected_invitations", "_selected_action": [invitation.pk]},
    )

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert Client().get(path).status_code == 404


def test_inviting_an_address_again_replaces_its_link(invitation_link):
    first = invitation_link("twice@example.org")
    second = invitation_link("Twice@example.org")
    assert Client().get(first).status_code == 404
    assert Client().get(second).status_code == 200
    assert Invitation.objects.open().count() == 1


def test_an_admin_sees_only_their_accounts_invitations(admin_client, account, other_account):
    services.invite_member(account=account, email="mine@example.org", role="VIEWER")
    theirs = services.invite_member(account=other_account, email="x@example.org", role="VIEWER")
    listed = admin_client.get(url("invitation")).context["cl"].result_list
    assert [i.email for i in listed] == ["mine@example.org"]
    assert admin_client.get(url("invitation", "change", theirs.pk)).status_code == 302
    assert not admin_client.get(url("invitation", "change", listed[0].pk)).context[
        "has_change_permission"
    ]


@pytest.mark.parametrize("token", ["nothing", "mti_" + "x" * 4000, "%00", "é"])
def test_any_token_gets_the_not_valid_page(client, token):
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 404
    assert b"expired, was used already or was revoked" in response.content


# --- languages -------------------------------------------------------------------------------


def test_the_mail_and_the_pages_speak_french(account):
    invitation = services.invite_member(account=account, email="fr@example.org", role="VIEWER")
    with translation.override("fr"):
        mail = services.invitation_mail(invitation=invitation, token="mti_x")
        page = render_to_string("members/invitation_invalid.html")
    assert mail.subject == "Votre invitation à rejoindre Acme sur Metering"
    assert "Suivez ce lien pour accepter" in mail.body
    assert "Ce lien d’invitation a expiré" in page


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_invitations_of_one_address_leave_one_open(mailoutbox):
    account = AccountFactory()
    failures = run_threads(
        6,
        lambda i: services.invite_member(account=account, email="race@example.org", role="VIEWER"),
    )
    assert failures == []
    assert Invitation.objects.count() == 6
    assert Invitation.objects.open().count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_uses_of_one_link_create_one_login(mailoutbox):
    account = AccountFactory()
    services.invite_member(account=account, email="dup@example.org", role="VIEWER")
    token = LINK.search(mailoutbox[-1].body)["token"]
    joined = []

    def accept(_: int) -> None:
        with contextlib.suppress(InvitationNotUsable):  # the others find it used
            joined.append(
                services.accept_invitation_with_password(token=token, password=STRONG_PASSWORD)
            )

    assert run_threads(6, accept) == []
    assert len(joined) == 1
    assert User.objects.filter(username="dup@example.org").count() == 1
    assert Membership.objects.filter(account=account).count() == 1
