# Offline stand-in for ansible-test's get-pip bootstrap (ci-files.testing.ansible.com is
# unreachable here): bootstrap pip with ensurepip, then let pip install the requested pins
# from PyPI (ensurepip leaves PIP_CONFIG_FILE=/dev/null behind, which hides /etc/pip.conf).
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)
os.environ.pop("ENSUREPIP_OPTIONS", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
