import { describe, expect, it } from "vitest";
import { leftAtKey, leftTopicListSince, topicListKey } from "./topic-list-baseline";

describe("a topic's list in a pair's baseline", () => {
  it("says since when a record is out of a list standing for the topic, and of no other topic", () => {
    const agreed = {
      [topicListKey("appeals", "grp-1")]: "left",
      [leftAtKey("appeals", "grp-1")]: "2026-11-02T10:00:00.000Z",
      [topicListKey("events", "grp-2")]: "member",
      "list:L-news:cc-news": "member",
    };
    expect(leftTopicListSince(agreed, "appeals")).toBe("2026-11-02T10:00:00.000Z");
    expect(leftTopicListSince(agreed, "events")).toBeUndefined();
    expect(leftTopicListSince(agreed, "news")).toBeUndefined();
  });

  it("tells a leave whose time was not kept from no leave at all", () => {
    expect(leftTopicListSince({ [topicListKey("appeals", "tag:7")]: "left" }, "appeals")).toBeNull();
    expect(leftTopicListSince({}, "appeals")).toBeUndefined();
  });
});
