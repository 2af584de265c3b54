"""The page of a member invitation's link (CONTRACT §1): set a password, or sign in, and join.

The link's token is the only credential here: a link that was used, revoked, has expired or
never existed gets the same "not valid" page (404). Only a POST uses the link up, so that a
mail client opening links ahead of the person does not. The invited address decides the form:
with no login yet, the person chooses a password for the login the address becomes; with a
login, that login signs in (or is signed in already) and accepts.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from metering import selectors, services
from metering.errors import InvitationForAnotherLogin, InvitationNotUsable
from metering.models import Invitation


@method_decorator([never_cache, sensitive_post_parameters()], name="dispatch")
class InvitationView(View):
    template_name = "members/invitation.html"
    invalid_template_name = "members/invitation_invalid.html"

    invitation: Invitation
    token: str

    def dispatch(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = selectors.usable_invitations(token=token).first()
        if invitation is None:
            return self.invalid()
        self.invitation, self.token = invitation, token
        return super().dispatch(request, token)

    # --- what the page shows --------------------------------------------------------------

    def mode(self) -> str:
        """``new`` (no login: set a password), ``join`` (signed in as it) or ``sign_in``."""
        logins = set(
            selectors.logins_of_address(email=self.invitation.email).values_list("pk", flat=True)
        )
        user = self.request.user
        if user.is_authenticated and user.pk in logins:
            return "join"
        return "sign_in" if logins else "new"

    def form(self, mode: str, data=None):
        if mode == "new":
            # Unsaved: the password validators compare the password with the future login.
            return SetPasswordForm(services.new_login(email=self.invitation.email), data)
        if mode == "sign_in":
            return AuthenticationForm(self.request, data)
        return None

    def page(self, mode: str, form, status: int = 200, error: str = "") -> HttpResponse:
        context = {
            **admin.site.each_context(self.request),
            "title": _("Invitation"),
            "invitation": self.invitation,
            "mode": mode,
            "form": form,
            "error": error,
        }
        return render(self.request, self.template_name, context, status=status)

    def invalid(self) -> HttpResponse:
        context = {**admin.site.each_context(self.request), "title": _("Invitation")}
        return render(self.request, self.invalid_template_name, context, status=404)

    # --- GET and POST ---------------------------------------------------------------------

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        mode = self.mode()
        return self.page(mode, self.form(mode))

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        mode = self.mode()
        form = self.form(mode, request.POST)
        if form is not None and not form.is_valid():
            return self.page(mode, form)
        try:
            if mode == "new":
                user = services.accept_invitation_with_password(
                    token=token, password=form.cleaned_data["new_password1"]
                )
            else:
                user = request.user if mode == "join" else form.get_user()
                services.accept_invitation(token=token, user=user)
        except InvitationNotUsable:
            return self.invalid()
        except InvitationForAnotherLogin:
            error = _("Sign in with your login for %(email)s to accept this invitation.") % {
                "email": self.invitation.email
            }
            return self.page("sign_in", self.form("sign_in"), status=403, error=error)
        except ValidationError as error:  # a password refused after the form's own checks
            form.add_error("new_password2", error)
            return self.page(mode, form)
        if mode != "join":
            login(request, user)
        messages.success(
            request,
            _("Welcome: you are a member of %(account)s.")
            % {"account": self.invitation.account.name},
        )
        return redirect("admin:index")
