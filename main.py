"""CDKTF app: one safe-release stack per environment in environments.toml, and one account
bootstrap stack per region they use."""

import sys

from modules import use_project_node
from release.config import ConfigError, load_config


def main() -> None:
    try:
        config = load_config()
    except ConfigError as error:
        sys.exit(f"error: {error}")

    # Imported after the config is known to be valid: loading cdktf and the AWS provider takes
    # seconds, and a typo in environments.toml should fail at once.
    use_project_node()
    from cdktf import App

    from modules.account import AccountBootstrapStack, AccountConfig
    from modules.stack import SafeReleaseStack
    from modules.traffic_policy import register_module_source

    app = App()
    register_module_source(app)
    for environment in config.environments.values():
        promotion = environment.promotion
        SafeReleaseStack(app, environment.name, environment,
                         after=config.environments[promotion.after] if promotion else None)
    for name, region in config.account_stacks.items():
        AccountBootstrapStack(app, name, AccountConfig(region, config.account_tags(region)))
    app.synth()


if __name__ == "__main__":
    main()
