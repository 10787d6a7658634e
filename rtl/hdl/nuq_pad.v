// nuq_pad: the value a window reads at an input position. Inside the input it is the stored
// level; outside it is the padding level: 0 for an ordinary tensor, the level of the
// channel's zero-point code for an `input_zp` model input (FORMAT.md §6.1: padding with code
// z[c] is a real zero; the consumer's bias already holds -sum(w * level(z))).
`default_nettype none
module nuq_pad (
    input  wire       in_bounds,     // the position lies in_bounds the input
    input  wire [7:0] level,      // stored level at that position
    input  wire       has_zp,     // the input is an input_zp layer
    input  wire [7:0] zp_level,   // level of the channel's zero-point code
    output wire [7:0] value
);
    assign value = in_bounds ? level : (has_zp ? zp_level : 8'd0);
endmodule
`default_nettype wire
