from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IncentivesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTLINE_INCENTIVES_", extra="ignore")
