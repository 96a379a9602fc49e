from setuptools import find_packages, setup

package_name = 'dit4dit_common'

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
        'Shared pieces below every node package of dit4dit_ros: the topic registry, robot '
        'profiles, time stamps, image conversion, parameter declaration and the one runner that'
        ' starts, spins and stops nodes.'),
    license='MIT',
    entry_points={
        'console_scripts': [
        ],
    },
)
