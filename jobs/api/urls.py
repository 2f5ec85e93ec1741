from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from jobs.api import breakers, compat, views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("jobs", views.JobViewSet, basename="job")

api_urlpatterns = [
    *router.urls,
    path("queue/", views.QueueView.as_view(), name="queue"),
    path("breakers/", breakers.BreakerListView.as_view(), name="breaker-list"),
    re_path(rf"^breakers/(?P<name>{breakers.NAME_PATTERN})/$", breakers.BreakerDetailView.as_view(), name="breaker-detail"),
    re_path(rf"^breakers/(?P<name>{breakers.NAME_PATTERN})/force-open/$", breakers.ForceOpenView.as_view(), name="breaker-force-open"),
    re_path(rf"^breakers/(?P<name>{breakers.NAME_PATTERN})/force-closed/$", breakers.ForceClosedView.as_view(), name="breaker-force-closed"),
    re_path(rf"^breakers/(?P<name>{breakers.NAME_PATTERN})/release/$", breakers.ReleaseView.as_view(), name="breaker-release"),
]

write_up_urlpatterns = [
    path("jobs", compat.WriteUpJobView.as_view(), name="write-up-jobs"),
    path("queue", compat.WriteUpQueueView.as_view(), name="write-up-queue"),
    path("circuit", breakers.CircuitView.as_view(), name="write-up-circuit"),
]
