"""The run as a graph; this file only wires. Read it beside the diagram in DESIGN.md.

goal ─► parse_goal ─► plan ─► [gate: plan] ─► gather ─► build_data ─► sweep ─► [gate: winner]
     ─► train ─► evaluate ─► [gate: deploy] ─► deploy ─► reflect ─► END
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.context import Context
from agent.gates import (
    after_deploy_gate,
    after_evaluate,
    after_plan_gate,
    after_winner_gate,
    deploy_gate,
    plan_gate,
    winner_gate,
)
from agent.nodes.data import build_data, gather
from agent.nodes.judge import evaluate
from agent.nodes.ship import deploy, reflect
from agent.nodes.training import sweep, train
from agent.nodes.understand import parse_goal, plan
from agent.state import InputState, State


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    builder = StateGraph(State, input_schema=InputState, context_schema=Context)
    builder.add_node(parse_goal)
    builder.add_node(plan)
    builder.add_node(plan_gate)
    builder.add_node(gather)
    builder.add_node(build_data)
    builder.add_node(sweep)
    builder.add_node(winner_gate)
    builder.add_node(train)
    builder.add_node(evaluate)
    builder.add_node(deploy_gate)
    builder.add_node(deploy)
    builder.add_node(reflect)

    builder.add_edge(START, "parse_goal")
    builder.add_edge("parse_goal", "plan")
    builder.add_edge("plan", "plan_gate")
    builder.add_conditional_edges("plan_gate", after_plan_gate)
    builder.add_edge("gather", "build_data")
    builder.add_edge("build_data", "sweep")
    builder.add_edge("sweep", "winner_gate")
    builder.add_conditional_edges("winner_gate", after_winner_gate)
    builder.add_edge("train", "evaluate")
    builder.add_conditional_edges("evaluate", after_evaluate)
    builder.add_conditional_edges("deploy_gate", after_deploy_gate)
    builder.add_edge("deploy", "reflect")
    builder.add_edge("reflect", END)
    return builder.compile(checkpointer=checkpointer, name="ingrain")
