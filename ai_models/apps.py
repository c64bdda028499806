from django.apps import AppConfig


class AIModelsConfig(AppConfig):
    name = "ai_models"
    verbose_name = "AI Models"
