from django import forms
from django.contrib.auth.models import Group, User

from demandes.models import Demande


class DemandeForm(forms.ModelForm):
    class Meta:
        model = Demande
        fields = ["title", "description", "assignee"]


class ChangeForm(forms.ModelForm):
    class Meta:
        model = Demande
        fields = ["status", "assignee"]


class BroadcastForm(forms.Form):
    title = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea, required=False)
    level = forms.ChoiceField(choices=[(v, v) for v in ("info", "success", "warning", "error")])
    group = forms.ModelChoiceField(
        Group.objects.all(), required=False, empty_label="everyone", to_field_name="name"
    )


def users() -> list[User]:
    return list(User.objects.order_by("username"))
