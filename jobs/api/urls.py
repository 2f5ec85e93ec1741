from django.urls import path
from rest_framework.routers import DefaultRouter

from jobs.api import compat, views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("jobs", views.JobViewSet, basename="job")

api_urlpatterns = [
    *router.urls,
    path("queue/", views.QueueView.as_view(), name="queue"),
]

write_up_urlpatterns = [
    path("jobs", compat.WriteUpJobView.as_view(), name="write-up-jobs"),
    path("queue", compat.WriteUpQueueView.as_view(), name="write-up-queue"),
]
