from setuptools import find_packages, setup

package_name = 'dit4dit_control'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='dit4dit_ros maintainers',
    maintainer_email='dit4dit-ros@users.noreply.github.com',
    description=(
        'Torch-free, safety-critical control of dit4dit_ros: the chunk executor, the safety '
        'filter, the executor state machine (ROS-free) and the action_executor, '
        'lockstep_executor and command_ghost nodes.'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'action_executor = dit4dit_control.nodes.action_executor:main',
            'command_ghost = dit4dit_control.nodes.command_ghost:main',
            'lockstep_executor = dit4dit_control.nodes.lockstep_executor:main',
        ],
    },
)
