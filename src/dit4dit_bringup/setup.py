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
        'Bringup of dit4dit_ros: it composes and implements no node. Launch files, per-node '
        'parameter YAML, rviz, the graph description and the in-process runners (run_graph, '
        'demonstration collection, closed-loop evaluation).'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'run_graph = dit4dit_bringup.run_graph:main',
            'collect_demos = dit4dit_bringup.collect_demos:main',
            'evaluate_closed_loop = dit4dit_bringup.evaluate_closed_loop:main',
            'evaluate_g1 = dit4dit_bringup.evaluate_g1:main',
            'bench_runtime = dit4dit_bringup.bench_runtime:main',
        ],
    },
)
