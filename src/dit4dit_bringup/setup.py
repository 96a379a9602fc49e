from glob import glob

from setuptools import find_packages, setup

package_name = 'dit4dit_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='dit4dit_ros maintainers',
    maintainer_email='dit4dit-ros@users.noreply.github.com',
    description=(
        'Bringup of dit4dit_ros: launch files, robot and simulation profiles, rviz '
        'config, the G1 and simulation bridges.'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'run_graph = dit4dit_bringup.run_graph:main',
            'g1_bridge = dit4dit_bringup.nodes.g1_bridge:main',
            'command_ghost = dit4dit_bringup.nodes.command_ghost:main',
            'sim_bridge = dit4dit_bringup.nodes.sim_bridge:main',
            'scripted_expert = dit4dit_bringup.nodes.scripted_expert:main',
            'libero_expert = dit4dit_bringup.nodes.libero_expert:main',
            'expert_parity = dit4dit_bringup.expert_parity:main',
        ],
    },
)
