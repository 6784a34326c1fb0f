"""The pages: my demandes, one demande (status and assignee), and the staff broadcast."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from tidings_client.django import notify_on_commit

from demandes.forms import BroadcastForm, ChangeForm, DemandeForm
from demandes.models import Demande


@login_required
def demandes(request):
    form = DemandeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        demande = form.save(commit=False)
        demande.created_by = demande.edited_by = request.user
        demande.save()  # the assignee is told once this request's transaction commits
        return redirect("demande", demande.pk)
    visible = Demande.objects.select_related("created_by", "assignee")
    if not request.user.is_staff:
        visible = visible.filter(Q(created_by=request.user) | Q(assignee=request.user))
    return render(request, "demandes/list.html", {"demandes": visible, "form": form})


@login_required
def demande(request, pk):
    item = get_object_or_404(Demande, pk=pk)
    allowed = request.user.is_staff or request.user in (item.created_by, item.assignee)
    form = ChangeForm(request.POST or None, instance=item)
    if request.method == "POST" and allowed and form.is_valid():
        item = form.save(commit=False)
        item.edited_by = request.user
        item.save()
        messages.success(request, "Saved.")
        return redirect("demande", item.pk)
    context = {"demande": item, "form": form, "allowed": allowed}
    return render(request, "demandes/detail.html", context)


@staff_member_required(login_url="login")
def broadcast(request):
    """Staff announce something to everyone or to one group (its name is the role)."""
    form = BroadcastForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group = form.cleaned_data["group"]
        with transaction.atomic():
            notify_on_commit(
                to={"roles": [group.name]} if group else {"all": True},
                type="broadcast",
                title=form.cleaned_data["title"],
                body=form.cleaned_data["body"],
                level=form.cleaned_data["level"],
                actor=request.user.get_username(),
            )
        messages.success(request, "Sent.")
        return redirect("broadcast")
    return render(request, "demandes/broadcast.html", {"form": form})
