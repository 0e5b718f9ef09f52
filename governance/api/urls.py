"""People, team and token routes, mounted under /api/v1/."""
from django.urls import path

from governance.api import views

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
]
