from setuptools import find_packages, setup

package_name = 'dit4dit_sim'

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
        'Simulation for dit4dit_ros: environments behind one Environment interface (G1 tabletop'
        ' on MuJoCo, LIBERO), the sim_bridge node that speaks the robot topics, scripted '
        'experts and expert parity.'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'sim_bridge = dit4dit_sim.nodes.sim_bridge:main',
            'scripted_expert = dit4dit_sim.nodes.scripted_expert:main',
            'libero_expert = dit4dit_sim.nodes.libero_expert:main',
            'expert_parity = dit4dit_sim.expert_parity:main',
        ],
    },
)
