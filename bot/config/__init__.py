"""The typed configuration: environment registry, roles, permission matrix and channels.

The shipped ``defaults.yaml`` holds the seed's values; the operator's file (``MENOTIME_CONFIG``) is
merged over it. A bad file fails at start-up with the file, the line and the field at fault.
"""

from bot.config.environment import (
    WEEKDAYS,
    Budget,
    BudgetPoint,
    Cadence,
    ChangeWindow,
    EnvironmentConfig,
    ImageTagRule,
    Soak,
    TaskBounds,
    TimeZone,
    known_zone,
)
from bot.config.loading import deep_merge, load_config
from bot.config.schema import (
    ACTIONS,
    ANY_ROLE,
    CHANGE_ACTIONS,
    AlarmsConfig,
    Changes,
    Channels,
    Config,
    JobsConfig,
    Role,
    RoleMembers,
)

__all__ = [
    "ACTIONS",
    "ANY_ROLE",
    "CHANGE_ACTIONS",
    "WEEKDAYS",
    "AlarmsConfig",
    "Budget",
    "BudgetPoint",
    "Cadence",
    "ChangeWindow",
    "Changes",
    "Channels",
    "Config",
    "EnvironmentConfig",
    "ImageTagRule",
    "JobsConfig",
    "Role",
    "RoleMembers",
    "Soak",
    "TaskBounds",
    "TimeZone",
    "deep_merge",
    "known_zone",
    "load_config",
]
