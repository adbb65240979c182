from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo_project"
    verbose_name = "Agent platform demo"
