"""Kodi host, split by job:

- ``kodi_api``: the only module that calls Kodi (log, notifications, dialogs, settings, JSON-RPC,
  profile folder, home-window properties);
- ``player``: player callbacks and the position poll -> PlaybackEvents;
- ``service``: the service loop around SyncService (reloads, library play counts, messages);
- ``settings``: this profile's settings -> Config;
- ``actions``: the settings dialog's buttons, dispatched from ``settings.schema.ACTIONS``.

Entry points: resources/service.py runs ``service.run_service()``, resources/script.py
``actions.run_action(sys.argv)``.
"""
