"""The built-in provider simulator: a real HTTP provider in the Kie.ai market API shape.

It lets taskhook run end to end with no paid upstream, and provokes on request (``[sim:…]``
prompt tags) the failures, duplicate and out-of-order callbacks, silence, slowness and rate
limits that real providers produce. See ``app`` for the routes and ``jobs`` for the tags.
"""

from .app import Simulator, create_simulator_app
from .jobs import ImageBehaviour, ImageFault, SimulatorConfig, image_fault

__all__ = [
    "ImageBehaviour",
    "ImageFault",
    "Simulator",
    "SimulatorConfig",
    "create_simulator_app",
    "image_fault",
]
