"""People, team and token routes, mounted under /api/v1/."""
from django.urls import path

from governance.api import promotions, views, webhooks

app_name = "governance"
urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("teams/", views.TeamListView.as_view(), name="team-list"),
    path("teams/<slug:slug>/", views.TeamDetailView.as_view(), name="team-detail"),
    path("teams/<slug:slug>/members/", views.TeamMembersView.as_view(), name="team-members"),
    path("teams/<slug:slug>/members/<str:username>/", views.TeamMemberView.as_view(), name="team-member"),
    path("users/", views.UserListView.as_view(), name="user-list"),
    path("users/<str:username>/roles/", views.UserRolesView.as_view(), name="user-roles"),
    path("users/<str:username>/roles/<str:role>/", views.UserRoleView.as_view(), name="user-role"),
    path("tokens/", views.TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>/", views.TokenDetailView.as_view(), name="token-detail"),
    path("tokens/<int:pk>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("policies/", promotions.PolicyListView.as_view(), name="policy-list"),
    path("policies/<slug:name>/", promotions.PolicyDetailView.as_view(), name="policy-detail"),
    path("models/<str:name>/versions/<int:number>/promotions/", promotions.VersionPromotionsView.as_view(),
         name="version-promotions"),
    path("models/<str:name>/versions/<int:number>/waivers/", promotions.VersionWaiversView.as_view(),
         name="version-waivers"),
    path("models/<str:name>/stages/<str:stage>/rollback/", promotions.StageRollbackView.as_view(),
         name="stage-rollback"),
    path("promotions/", promotions.PromotionListView.as_view(), name="promotion-list"),
    path("promotions/<int:pk>/", promotions.PromotionDetailView.as_view(), name="promotion-detail"),
    path("promotions/<int:pk>/approve/", promotions.PromotionApproveView.as_view(), name="promotion-approve"),
    path("promotions/<int:pk>/reject/", promotions.PromotionRejectView.as_view(), name="promotion-reject"),
    path("promotions/<int:pk>/cancel/", promotions.PromotionCancelView.as_view(), name="promotion-cancel"),
    path("waivers/<int:pk>/revoke/", promotions.WaiverRevokeView.as_view(), name="waiver-revoke"),
    path("webhooks/", webhooks.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/", webhooks.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<int:pk>/deliveries/", webhooks.WebhookDeliveriesView.as_view(), name="webhook-deliveries"),
    path("webhooks/<int:pk>/deliveries/<int:delivery>/redeliver/", webhooks.DeliveryRedeliverView.as_view(),
         name="webhook-redeliver"),
]
