// nuq_linear: the classifier as a stand-alone unit: i32 logits = bias + sum of u8 input
// levels x i8 weight levels, the weights b-bit codebook indices in row_per_output words
// (FORMAT.md §6.3). Loads the weight codebook into its LUT (2^b cycles), then computes one
// logit after another, P inputs per cycle (ceil(n_in / P) cycles per logit, one more to
// drain). The inputs are read in the file's feature order through act_addr/act_data.
`default_nettype none
module nuq_linear #(
    parameter P = 16,
    parameter W = 64
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire [31:0]    n_in,       // input features
    input  wire [31:0]    n_out,      // logits
    input  wire [3:0]     wbits,      // weight index bits
    input  wire [31:0]    wpr,        // words per output row
    output reg  [P*32-1:0] act_addr,  // feature j of lane p
    input  wire [P*8-1:0] act_data,
    output reg  [P*32-1:0] w_addr,    // weight word of lane p
    input  wire [P*W-1:0] w_data,
    output wire [7:0]     cb_addr,    // codebook entry being loaded
    input  wire [7:0]     cb_data,
    output wire [31:0]    bias_addr,  // bias of the current logit
    input  wire [31:0]    bias_data,
    output wire           out_valid,  // out_data is logit out_index
    output wire [31:0]    out_index,
    output wire [31:0]    out_data,
    output reg            done
);
    localparam S_IDLE = 0, S_LUT = 1, S_RUN = 2, S_DRAIN = 3;
    reg [1:0]  state;
    reg [8:0]  cnt;
    reg [31:0] o, k0, o_res;
    wire [31:0] lanes = W / wbits;
    assign cb_addr = cnt[7:0];
    assign bias_addr = o;

    reg [P-1:0]   valid;
    reg [P*9-1:0] lane_sel;
    integer p;
    always @(*) begin
        for (p = 0; p < P; p = p + 1) begin
            valid[p] = (k0 + p < n_in);
            act_addr[32*p +: 32] = k0 + p;
            w_addr[32*p +: 32] = o * wpr + (k0 + p) / lanes;
            lane_sel[9*p +: 9] = (k0 + p) % lanes;
        end
    end
    wire [P*8-1:0] idx, lvl;
    genvar g;
    generate
        for (g = 0; g < P; g = g + 1) begin : lane
            nuq_unpack #(.W(W)) u_unpack (.word(w_data[W*g +: W]), .bits(wbits),
                .lane(lane_sel[9*g +: 9]), .index(idx[8*g +: 8]));
        end
    endgenerate
    nuq_codebook_lut #(.P(P)) u_lut (.clk(clk), .we(state == S_LUT), .waddr(cnt[7:0]),
        .wdata(cb_data), .raddr(idx), .rdata(lvl));
    wire last_chunk = (k0 + P >= n_in);
    wire mac_done;
    assign out_valid = mac_done;
    assign out_index = o_res;
    nuq_mac_array #(.P(P)) u_mac (.clk(clk), .rst(rst), .en(state == S_RUN), .act(act_data),
        .wgt(lvl), .valid(valid), .seg({P{1'b0}}), .start(k0 == 0), .bias_cur(bias_data),
        .finish(last_chunk), .bias_next(32'd0), .done(mac_done), .result(out_data));
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE; done <= 1'b0;
        end else begin
            done <= 1'b0;
            case (state)
            S_IDLE: if (start) begin state <= S_LUT; cnt <= 0; o <= 0; k0 <= 0; end
            S_LUT: begin
                cnt <= cnt + 9'd1;
                if (cnt + 9'd1 == (9'd1 << wbits)) state <= S_RUN;
            end
            S_RUN: begin
                if (last_chunk) begin
                    o_res <= o;
                    k0 <= 0;
                    o <= o + 1;
                    if (o + 1 == n_out) state <= S_DRAIN;
                end else k0 <= k0 + P;
            end
            S_DRAIN: if (!mac_done) begin state <= S_IDLE; done <= 1'b1; end
            endcase
        end
    end
endmodule
`default_nettype wire
