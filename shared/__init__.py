"""The kernel the three services share: settings, db, events/outbox/inbox, auth, errors, clock."""
