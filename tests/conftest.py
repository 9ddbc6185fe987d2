"""Suite-wide settings. Hypothesis: no timing checks, which fail on a loaded 2-core machine without a bug."""

from hypothesis import HealthCheck, settings

settings.register_profile("extractor", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("extractor")
