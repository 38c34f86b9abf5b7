"""mlstack's infrastructure as a CDK Terrain app: the Pulumi program's spec and manifests,
synthesized to Terraform JSON per target (`make infra-synth`)."""

import sys
from pathlib import Path

# One spec, two renderers: the Pulumi program's spec, manifests and stack file (modules that
# import no Pulumi) are imported from its folder.
PULUMI_PROGRAM = Path(__file__).resolve().parents[2] / "pulumi"
if str(PULUMI_PROGRAM) not in sys.path:
    sys.path.insert(0, str(PULUMI_PROGRAM))
