from glob import glob

from setuptools import find_packages, setup

package_name = 'dit4dit_g1'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='dit4dit_ros maintainers',
    maintainer_email='dit4dit-ros@users.noreply.github.com',
    description=(
        'The Unitree G1 driver of dit4dit_ros: the one G1 description (joints, motor slots, '
        'limits, gains, ramps, Dex3 hands), LowCmd/HandCmd packing with the CRC, the bridge '
        'state machine (ROS-free) and the g1_bridge node.'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'g1_bridge = dit4dit_g1.nodes.g1_bridge:main',
        ],
    },
)
