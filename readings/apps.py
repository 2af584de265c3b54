from django.apps import AppConfig


class ReadingsConfig(AppConfig):
    name = "readings"
    verbose_name = "Readings"

    def ready(self) -> None:
        from metering.signals import series_parameters_changed
        from readings import periods, services

        series_parameters_changed.connect(services.on_series_parameters_changed)
        series_parameters_changed.connect(periods.on_series_parameters_changed)
