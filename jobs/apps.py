from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_breakers(sender, **kwargs) -> None:
    """Every configured dependency has its Breaker row from the start (visible before its first call)."""
    from jobs import breakers

    breakers.breakers_ensure()


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import dependencies
        from jobs.handlers import registry

        registry.load()
        # A bad RESILIENT_DEPENDENCIES stops every process at start-up (web, worker, manage.py)
        # with the message naming the dependency and key, not the first request that reads it.
        dependencies.configured()
        post_migrate.connect(_ensure_breakers, sender=self, dispatch_uid="jobs.ensure_breakers")
