from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTLINE_REGISTRY_", extra="ignore")

    # argon2id cost (argon2-cffi's defaults: RFC 9106 low-memory profile).
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 65536
    argon2_parallelism: int = 4
    password_min_length: int = 10
    # Login brakes (services/registry/throttle.py has the numbers and why).
    login_user_free_failures: int = 5
    login_user_max_lock_seconds: float = 300
    login_address_free_failures: int = 20
    login_address_max_lock_seconds: float = 900
    login_failure_half_life_seconds: float = 600
    # All rows or none: a file bigger than this is refused before it is read into memory.
    import_max_rows: int = 50_000
    # Refused while reading (an XLSX by its declared size first): 50,000 rows x 40 columns
    # once froze every service for 44 s; our widest import has 8 columns.
    import_max_columns: int = 32
    import_max_cells: int = 500_000
    import_max_unzipped_mib: int = 32


def registry_settings(settings: ServiceSettings) -> RegistrySettings:
    """The registry's settings, whatever class the runtime was handed (tests pass the base)."""
    if isinstance(settings, RegistrySettings):
        return settings
    return RegistrySettings(**settings.model_dump(exclude_unset=True))
