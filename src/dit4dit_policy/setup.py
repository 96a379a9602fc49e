from setuptools import find_packages, setup

package_name = 'dit4dit_policy'

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
        'DiT4DiT policy: the model (video DiT feature tap, action DiT), inference, the typed '
        'policy contract saved in every checkpoint, and the policy node.'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'bench = dit4dit_policy.bench:main',
            'policy_node = dit4dit_policy.nodes.policy_node:main',
        ],
    },
)
