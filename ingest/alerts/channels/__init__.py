"""The alert channel kinds, one module each: mqtt, homeassistant, apprise, webhook. alerts/delivery.py builds
them by kind from the [[alerts]] tables (and [mqtt]); each imports its library only when it is built."""
