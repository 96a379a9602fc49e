"""Gravity feed-forward: the torques hold the arms still, follow the IMU, and stay bounded."""

from dit4dit_g1.bridge import BridgeConfig, BridgeCore
from dit4dit_g1.description import load_description
from dit4dit_g1.gravity import fixed_base_g1_xml, GravityModel
from dit4dit_g1.lowcmd import ARM_SDK_MOTORS
import numpy as np
import pytest
from unitree_hg.msg import LowCmd

mujoco = pytest.importorskip('mujoco')
G1 = load_description()
REACH = {'waist_pitch_joint': 0.3, 'left_shoulder_pitch_joint': -1.0,
         'left_shoulder_roll_joint': 0.3, 'left_elbow_joint': 0.2, 'right_shoulder_pitch_joint':
         -0.4, 'right_elbow_joint': -0.6, 'right_wrist_pitch_joint': 0.5}


@pytest.fixture(scope='module')
def model():
    return GravityModel(G1.body_names, ARM_SDK_MOTORS, G1.effort)


def pose(values=REACH):
    q = np.zeros(len(G1.body_names))
    for name, value in values.items():
        q[G1.slot(name)] = value
    return q


def test_the_torques_hold_a_reaching_arm_still_in_an_independent_simulation(model):
    """Applied as joint torques in MuJoCo the waist and arms stay still; without, they fall."""
    m = mujoco.MjModel.from_xml_string(fixed_base_g1_xml())
    m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION   # torques only, no servos
    d = mujoco.MjData(m)
    q = pose()
    joints = [m.joint(n) for n in G1.body_names]
    for joint, value in zip(joints, q):
        d.qpos[joint.qposadr[0]] = value
    dofs = np.array([joints[s].dofadr[0] for s in ARM_SDK_MOTORS])
    tau = model.torques(q)
    assert np.abs(tau).max() > 3.0        # a reaching arm needs several N.m

    def accelerations(applied):
        d.qfrc_applied[:] = 0.0
        d.qfrc_applied[dofs] = applied
        mujoco.mj_forward(m, d)
        return d.qacc[dofs].copy()

    held, falling = accelerations(tau[list(ARM_SDK_MOTORS)]), accelerations(0.0)
    # The free fingers and passive joint damping aside, nothing moves the arm but gravity.
    assert np.abs(held).max() < 1e-3 * np.abs(falling).max()
    assert np.all(tau[:12] == 0.0)                       # the legs belong to the controller


def test_the_pelvis_orientation_rotates_gravity(model):
    q = pose()
    upright = model.torques(q)
    upside_down = model.torques(q, (0.0, 1.0, 0.0, 0.0))       # 180 degrees about x
    assert upside_down == pytest.approx(-upright, abs=1e-9)
    tilted = model.torques(q, (np.cos(0.2), 0.0, np.sin(0.2), 0.0))   # 0.4 rad pitch
    assert not np.allclose(tilted, upright, atol=0.05)
    assert model.torques(q, (0.0, 0.0, 0.0, 0.0)) == pytest.approx(upright)   # no IMU yet


def test_bad_input_and_models_that_do_not_fit(model):
    q = pose()
    q[G1.slot('left_elbow_joint')] = np.nan
    assert np.all(model.torques(q) == 0.0)               # no feed-forward from a bad measurement
    assert np.all(model.torques(np.zeros(5)) == 0.0)
    bounded = GravityModel(G1.body_names, ARM_SDK_MOTORS, G1.effort, max_fraction=0.05)
    tau = bounded.torques(pose())
    limit = 0.05 * G1.effort
    assert np.all(np.abs(tau) <= limit + 1e-12) and np.any(np.isclose(np.abs(tau), limit))
    names = list(G1.body_names)
    names[20] = 'left_tentacle_joint'
    with pytest.raises(ValueError, match='left_tentacle_joint'):
        GravityModel(names, ARM_SDK_MOTORS, G1.effort)
    with pytest.raises(ValueError, match='max_fraction'):
        GravityModel(G1.body_names, ARM_SDK_MOTORS, G1.effort, max_fraction=1.5)


def test_the_bridge_sends_the_torques_as_tau_and_never_while_damping(model):
    c = BridgeCore(G1, BridgeConfig(mode='arm_sdk'), gravity=model)
    q, quat = pose(), (np.cos(0.1), 0.0, np.sin(0.1), 0.0)
    c.on_lowstate(q, 5, 0.0, quat)
    c.enable(0.0)
    msg = LowCmd()
    c.tick(0.004, msg, {})
    sent = np.array([msg.motor_cmd[s].tau for s in range(29)])
    assert sent == pytest.approx(model.torques(q, quat))
    assert np.abs(sent).max() > 1.0
    c.estop()
    c.tick(0.008, msg, {})
    assert all(msg.motor_cmd[s].tau == 0.0 and msg.motor_cmd[s].kp == 0.0 for s in range(29))
    plain = BridgeCore(G1, BridgeConfig(mode='arm_sdk'))
    plain.on_lowstate(q, 5, 0.0, quat)
    plain.enable(0.0)
    plain.tick(0.004, msg, {})
    assert all(msg.motor_cmd[s].tau == 0.0 for s in range(29))
