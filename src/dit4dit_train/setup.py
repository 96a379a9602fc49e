from glob import glob

from setuptools import find_packages, setup

package_name = 'dit4dit_train'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/config/feature_maps', glob('config/feature_maps/*.yaml')),
        ('share/' + package_name + '/config/training', glob('config/training/*.yaml')),
        ('share/' + package_name + '/config/accelerate', glob('config/accelerate/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='dit4dit_ros maintainers',
    maintainer_email='dit4dit-ros@users.noreply.github.com',
    description=(
        'Training side of dit4dit_ros: rosbag to LeRobot v3 conversion, dataset loading, '
        'accelerate training, offline evaluation; the bag recorder node.'),
    license='MIT',
    entry_points={
        'console_scripts': [
            'convert = dit4dit_train.convert:main',
            'validate = dit4dit_train.validate:main',
            'repair_bag = dit4dit_train.bag_repair:main',
            'train = dit4dit_train.train:main',
            'evaluate = dit4dit_train.evaluate:main',
            'bag_recorder = dit4dit_train.nodes.recorder:main',
            'data_bench = dit4dit_train.bench:main',
            'evaluate_instruction = dit4dit_train.evaluate_instruction:main',
            'embed_instructions = dit4dit_train.embed_instructions:main',
        ],
    },
)
