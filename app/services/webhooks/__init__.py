"""Webhooks: endpoints per account, a transactional outbox fed by the journal, and a
dispatcher that signs (Standard Webhooks) and delivers with retries."""
