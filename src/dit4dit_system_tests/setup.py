from setuptools import find_packages, setup

package_name = 'dit4dit_system_tests'

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
        'Cross-package checks of dit4dit_ros: layering with an allowed-dependency matrix, DDS '
        'round trips, the Unitree wire layout, topic and parameter consistency, stopping under '
        'real signals, workspace tooling.'),
    license='MIT',
    entry_points={
        'console_scripts': [
        ],
    },
)
