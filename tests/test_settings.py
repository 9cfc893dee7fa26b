from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import ConfigError, Environment, LogFormat, Settings, load_settings

ENV_NAMES = [
    "ENVIRONMENT",
    "DATABASE_URL",
    "REDIS_URL",
    "API_KEY",
    "TOKENS_DIR",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "LOG_DIR",
    "CORS_ORIGINS",
    "PORT",
    "HOST",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENS_DIR", str(tmp_path / "no-tokens"))


class TestSettings:
    def test_defaults_are_the_embedded_development_setup(self) -> None:
        settings = Settings()
        assert settings.environment is Environment.DEVELOPMENT
        assert settings.db.url is None
        assert settings.db.is_sqlite
        assert settings.redis.url is None
        assert settings.log.format is LogFormat.JSON
        assert settings.cors_origins == []

    def test_reads_flat_environment_names_into_groups(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", "postgresql://db/ticker")
        monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
        monkeypatch.setenv("LOG_LEVEL", "debug")
        monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
        monkeypatch.setenv("PORT", "9000")
        settings = Settings()
        assert settings.db.url == "postgresql://db/ticker"
        assert not settings.db.is_sqlite
        assert settings.redis.url == "redis://cache:6379/0"
        assert settings.log.level == "DEBUG"
        assert settings.cors_origins == ["https://a.example", "https://b.example"]
        assert settings.port == 9000

    def test_ignores_variables_named_after_fields(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Shells set these for their own purposes (the README exports URL for curl).
        for name, value in {"URL": "http://127.0.0.1:8000", "LEVEL": "chatty", "DB": "x"}.items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        assert settings.db.url is None
        assert settings.redis.url is None
        assert settings.log.level == "INFO"
        # Code still builds groups by field name.
        assert Settings(db={"url": "postgresql://db/t"}).db.url == "postgresql://db/t"

    def test_rejects_unknown_log_level(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOG_LEVEL", "chatty")
        with pytest.raises(ValueError, match="unknown log level"):
            Settings()


class TestProductionRefusal:
    def test_names_every_missing_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        with pytest.raises(ConfigError) as caught:
            load_settings()
        message = str(caught.value)
        assert "DATABASE_URL is not set" in message
        assert "REDIS_URL is not set" in message
        assert "no API key configured" in message
        assert "\n" not in message

    def test_refuses_sqlite(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("DATABASE_URL", "sqlite:///data/x.db")
        monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
        monkeypatch.setenv("API_KEY", "k" * 32)
        with pytest.raises(ConfigError, match="DATABASE_URL is SQLite"):
            load_settings()

    def test_key_files_count_as_keys(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        tokens = tmp_path / "tokens"
        tokens.mkdir()
        (tokens / "desk.json").write_text('{"account": "desk", "scopes": ["read"], "key": "x"}')
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("DATABASE_URL", "postgresql://db/ticker")
        monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
        monkeypatch.setenv("TOKENS_DIR", str(tokens))
        assert load_settings().is_production

    def test_development_is_never_refused(self) -> None:
        assert load_settings().production_problems() == []
